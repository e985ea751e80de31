package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/proxycast/caddy-proxycast/usage"
)

// DefaultUsageSync is how often the usage of named clients and
// credentials is stored.
const DefaultUsageSync = 30 * time.Second

// minUsageSync bounds usage_sync from below: every sync writes a file and
// reads the other instances'.
const minUsageSync = 50 * time.Millisecond

// usagePrefix is where each instance keeps its usage:
// proxycast/usage/<instance id>.json.
const usagePrefix = "proxycast/usage"

// The meters outlive configs: a reload does not reset what a client or a
// credential has used. They are keyed by the storage their usage is kept
// in and, within it, clients' by name and credentials' by provider and id
// (see meterKey).
var (
	clientMeters     = caddy.NewUsagePool()
	credentialMeters = caddy.NewUsagePool()
)

// heldMeter is a meter in a pool. When the last config lets go of it,
// its counts go back to the syncer, to be stored with the rest: a client
// or credential that comes back (a config that drops it and the next
// that has it again, or one deleted and added again) takes them up where
// they were, and the order in which configs stop loses nothing.
type heldMeter struct {
	*usage.Meter
	key  string // in the usage file
	back func(usage.Saved)
}

func (m heldMeter) Destruct() error {
	m.back(m.Save())
	return nil
}

// meterKey keys a credential's meter.
func meterKey(prov, id string) string { return prov + "/" + id }

// Sections of the usage file.
const (
	sectionClients     = "clients"
	sectionCredentials = "credentials"
)

// heldMeter takes a hold on the meter of key in pool for this config's
// storage, made with what this instance stored of it if there is none
// yet. The caller lets go with pool.Delete(held).
func (h *Handler) heldMeter(pool *caddy.UsagePool, key, section string) (m *usage.Meter, held string) {
	s := h.usage
	held = s.id + "|" + key
	v, _, _ := pool.LoadOrNew(held, func() (caddy.Destructor, error) {
		m := usage.NewMeter()
		if saved, ok := s.take(section, key); ok {
			m.Restore(saved)
		}
		return heldMeter{m, key, func(saved usage.Saved) { s.giveBack(section, key, saved) }}, nil
	})
	return v.(heldMeter).Meter, held
}

// usageFile is one instance's stored usage.
type usageFile struct {
	Instance    string                 `json:"instance"`
	SavedAt     time.Time              `json:"saved_at"`
	Clients     map[string]usage.Saved `json:"clients"`
	Credentials map[string]usage.Saved `json:"credentials,omitempty"`
}

// usageSyncer stores this instance's usage every interval, and reads the
// other instances' where a client has a token budget, so that a restart
// loses at most an interval, and budgets are shared by the instances of a
// cluster with shared storage (each instance counts the others' as of its
// last read). One runs per Caddy process and storage, held by the
// handlers.
type usageSyncer struct {
	id      string // of the storage, in the keys of usageSyncs and the meters
	storage certmagic.Storage
	// retime signals that want, the interval asked for, may have changed.
	retime   chan struct{}
	instance string
	logger   *zap.Logger
	stop     chan struct{}
	done     chan struct{}

	mu sync.Mutex
	// restored is this instance's stored usage not yet handed to a meter,
	// by section and key.
	restored map[string]map[string]usage.Saved
	// peers is the other instances' client usage, by instance and client.
	peers map[string]map[string]usage.Saved
	// saved fingerprints what was stored last, to skip a write that
	// would change nothing.
	saved [sha256.Size]byte
	want  time.Duration
}

// usageSyncs holds the syncers, by storage.
var usageSyncs = caddy.NewUsagePool()

// provisionUsage takes a hold on the syncer of this config's storage,
// starting it if none runs, and sets its interval: a config that moves the
// storage gets its own. The storage is named by a digest of its identity,
// which may hold a password.
func (h *Handler) provisionUsage() error {
	sum := sha256.Sum256([]byte(storageIdentity(h.storage)))
	id := hex.EncodeToString(sum[:8])
	every := time.Duration(h.UsageSync)
	v, loaded, err := usageSyncs.LoadOrNew(id, func() (caddy.Destructor, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return startUsageSync(ctx, id, h.storage, every, h.logger.Named("usage"))
	})
	if err != nil {
		return fmt.Errorf("starting the usage store: %v", err)
	}
	h.usage = v.(*usageSyncer)
	if loaded {
		h.usage.setInterval(every)
	}
	return nil
}

// setInterval has the loop sync every d from its next tick on, without
// waiting for it.
func (s *usageSyncer) setInterval(d time.Duration) {
	s.mu.Lock()
	s.want = d
	s.mu.Unlock()
	select {
	case s.retime <- struct{}{}:
	default: // a signal is pending already
	}
}

func startUsageSync(ctx context.Context, storageID string, storage certmagic.Storage, every time.Duration, logger *zap.Logger) (*usageSyncer, error) {
	id, err := caddy.InstanceID()
	if err != nil {
		return nil, err
	}
	s := &usageSyncer{id: storageID, storage: storage, retime: make(chan struct{}, 1), want: every, instance: id.String(), logger: logger,
		stop: make(chan struct{}), done: make(chan struct{}),
		restored: map[string]map[string]usage.Saved{}, peers: map[string]map[string]usage.Saved{}}
	own, err := s.load(ctx, s.key(s.instance))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		// Not fatal: counting starts afresh, and the file is replaced.
		logger.Error("reading the stored usage", zap.Error(err))
	default:
		s.restored[sectionClients] = own.Clients
		s.restored[sectionCredentials] = own.Credentials
	}
	s.readPeers(ctx)
	go s.loop(every)
	return s, nil
}

func (s *usageSyncer) key(instance string) string { return path.Join(usagePrefix, instance+".json") }

func (s *usageSyncer) load(ctx context.Context, key string) (usageFile, error) {
	var f usageFile
	raw, err := s.storage.Load(ctx, key)
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return f, err
	}
	return f, nil
}

// take hands a new meter what this instance stored of it.
func (s *usageSyncer) take(section, key string) (usage.Saved, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	saved, ok := s.restored[section][key]
	delete(s.restored[section], key)
	return saved, ok
}

// giveBack keeps the counts of a meter no config holds any more, to be
// stored and taken again.
func (s *usageSyncer) giveBack(section, key string, saved usage.Saved) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.restored[section] == nil {
		s.restored[section] = map[string]usage.Saved{}
	}
	s.restored[section][key] = saved
}

// Spent is the tokens other instances counted for the client in the
// budget window that begins at window, as of the last read of their
// files (clients.Peers).
func (s *usageSyncer) Spent(name string, window time.Time) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, cs := range s.peers {
		if saved, ok := cs[name]; ok && saved.Window.Equal(window) {
			n += saved.WindowTokens
		}
	}
	return n
}

// loop syncs every interval, the interval of the config loaded last.
func (s *usageSyncer) loop(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.retime:
			s.mu.Lock()
			d := s.want
			s.mu.Unlock()
			if d != every {
				every = d
				t.Reset(every)
			}
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every+10*time.Second)
			s.save(ctx)
			if budgeted() {
				s.readPeers(ctx)
			}
			cancel()
		}
	}
}

// budgeted reports whether a running handler has a client with a token
// budget: only then are the other instances' counts needed.
func budgeted() bool {
	for _, h := range live.newestFirst() {
		for _, c := range h.clientSet().All() {
			if c.Budget.Tokens > 0 {
				return true
			}
		}
	}
	return false
}

// save stores every meter of this process, and what was restored for
// clients and credentials no config has now (they may come back). A file
// that would not change is not written again.
func (s *usageSyncer) save(ctx context.Context) {
	f := usageFile{Instance: s.instance, Clients: map[string]usage.Saved{}, Credentials: map[string]usage.Saved{}}
	s.mu.Lock()
	for name, saved := range s.restored[sectionClients] {
		f.Clients[name] = saved
	}
	for key, saved := range s.restored[sectionCredentials] {
		f.Credentials[key] = saved
	}
	s.mu.Unlock()
	for pool, into := range map[*caddy.UsagePool]map[string]usage.Saved{clientMeters: f.Clients, credentialMeters: f.Credentials} {
		pool.Range(func(key, value any) bool {
			if strings.HasPrefix(key.(string), s.id+"|") {
				m := value.(heldMeter)
				into[m.key] = m.Save()
			}
			return true
		})
	}
	counts, err := json.Marshal(f)
	if err != nil {
		s.logger.Error("storing the usage", zap.Error(err))
		return
	}
	sum := sha256.Sum256(counts)
	s.mu.Lock()
	same := sum == s.saved
	s.mu.Unlock()
	if same {
		return
	}
	f.SavedAt = time.Now().UTC()
	raw, err := json.Marshal(f)
	if err == nil {
		err = s.storage.Store(ctx, s.key(s.instance), raw)
	}
	if err != nil {
		s.logger.Error("storing the usage", zap.Error(err))
		return
	}
	s.mu.Lock()
	s.saved = sum
	s.mu.Unlock()
}

func (s *usageSyncer) readPeers(ctx context.Context) {
	keys, err := s.storage.List(ctx, usagePrefix, false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.logger.Error("listing the other instances' usage", zap.Error(err))
		return
	}
	peers := map[string]map[string]usage.Saved{}
	for _, k := range keys {
		inst := strings.TrimSuffix(path.Base(k), ".json")
		if inst == s.instance || !strings.HasSuffix(k, ".json") {
			continue
		}
		f, err := s.load(ctx, k)
		if err != nil {
			s.logger.Warn("reading another instance's usage", zap.String("key", k), zap.Error(err))
			continue
		}
		peers[inst] = f.Clients
	}
	s.mu.Lock()
	s.peers = peers
	s.mu.Unlock()
}

// Destruct stops the syncer and stores the usage once more, so that a
// clean stop loses nothing.
func (s *usageSyncer) Destruct() error {
	close(s.stop)
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.save(ctx)
	return nil
}
