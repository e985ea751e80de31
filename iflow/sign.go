package iflow

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/google/uuid"
)

// UserAgent is the exact User-Agent iFlow expects; the signature is bound
// to it too.
const UserAgent = "iFlow-Cli"

// Sign returns the x-iflow-signature for a chat request: lowercase hex of
// HMAC-SHA256 keyed with the API key over "iFlow-Cli:<session-id>:<ms>".
func Sign(apiKey, sessionID string, timestampMillis int64) string {
	var buf [sha256.Size * 2]byte
	return string(appendSignature(buf[:0], apiKey, sessionID, timestampMillis))
}

func appendSignature(dst []byte, apiKey, sessionID string, timestampMillis int64) []byte {
	mac := hmac.New(sha256.New, []byte(apiKey))
	var msg [128]byte
	m := append(msg[:0], UserAgent...)
	m = append(m, ':')
	m = append(m, sessionID...)
	m = append(m, ':')
	m = strconv.AppendInt(m, timestampMillis, 10)
	mac.Write(m)
	var sum [sha256.Size]byte
	return hex.AppendEncode(dst, mac.Sum(sum[:0]))
}

// NewSessionID returns a fresh "session-<uuid v4>" for the session-id
// header.
func NewSessionID() string {
	return "session-" + uuid.NewString()
}
