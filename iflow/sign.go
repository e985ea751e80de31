package iflow

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// UserAgent is the exact User-Agent iFlow expects; the signature is bound
// to it too.
const UserAgent = "iFlow-Cli"

// Sign returns the x-iflow-signature for a chat request: lowercase hex of
// HMAC-SHA256 keyed with the API key over "iFlow-Cli:<session-id>:<ms>".
func Sign(apiKey, sessionID string, timestampMillis int64) string {
	var msg [128]byte
	m := append(msg[:0], UserAgent...)
	m = append(m, ':')
	m = append(m, sessionID...)
	m = append(m, ':')
	m = strconv.AppendInt(m, timestampMillis, 10)
	var buf [sha256.Size * 2]byte
	return string(appendSignature(buf[:0], apiKey, m))
}

// appendSignature appends the lowercase hex HMAC-SHA256 of msg keyed with
// apiKey. crypto/hmac allocates its hash states per call; that costs
// well under a microsecond, and a hand-rolled HMAC is not worth it.
func appendSignature(dst []byte, apiKey string, msg []byte) []byte {
	mac := hmac.New(sha256.New, []byte(apiKey))
	mac.Write(msg)
	var sum [sha256.Size]byte
	return hex.AppendEncode(dst, mac.Sum(sum[:0]))
}

// NewSessionID returns a fresh "session-<uuid v4>" for the session-id
// header.
func NewSessionID() string {
	var buf [len("session-") + 36]byte
	return string(appendSessionID(buf[:0]))
}

// appendSessionID appends "session-" and a random (version 4) UUID in its
// lowercase text form.
func appendSessionID(dst []byte) []byte {
	var u [16]byte
	rand.Read(u[:])         // never fails; does not escape u
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	dst = append(dst, "session-"...)
	dst = hex.AppendEncode(dst, u[0:4])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, u[4:6])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, u[6:8])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, u[8:10])
	dst = append(dst, '-')
	return hex.AppendEncode(dst, u[10:16])
}
