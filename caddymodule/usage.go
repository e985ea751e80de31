package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/proxycast/caddy-proxycast/clients"
)

// DefaultUsageSync is how often the named clients' usage is stored.
const DefaultUsageSync = 30 * time.Second

// minUsageSync bounds usage_sync from below: every sync writes a file and
// reads the other instances'.
const minUsageSync = 50 * time.Millisecond

// usagePrefix is where each instance keeps its clients' usage:
// proxycast/usage/<instance id>.json.
const usagePrefix = "proxycast/usage"

// usageFile is one instance's stored usage.
type usageFile struct {
	Instance string                   `json:"instance"`
	SavedAt  time.Time                `json:"saved_at"`
	Clients  map[string]clients.Saved `json:"clients"`
}

// usageSyncer stores this instance's client usage every interval and
// reads the other instances', so that a restart loses at most an
// interval, and budgets are shared by the instances of a cluster with
// shared storage (each instance counts the others' as of its last read).
// One runs per Caddy process, held by the handlers that have clients.
type usageSyncer struct {
	storage  certmagic.Storage
	every    time.Duration
	instance string
	logger   *zap.Logger
	stop     chan struct{}
	done     chan struct{}

	mu sync.Mutex
	// restored is this instance's stored usage not yet handed to a meter.
	restored map[string]clients.Saved
	// peers is the other instances' usage, by instance and client.
	peers map[string]map[string]clients.Saved
}

// usageSyncs holds the syncer, by interval.
var usageSyncs = caddy.NewUsagePool()

func startUsageSync(ctx context.Context, storage certmagic.Storage, every time.Duration, logger *zap.Logger) (*usageSyncer, error) {
	id, err := caddy.InstanceID()
	if err != nil {
		return nil, err
	}
	s := &usageSyncer{storage: storage, every: every, instance: id.String(), logger: logger,
		stop: make(chan struct{}), done: make(chan struct{}), restored: map[string]clients.Saved{}, peers: map[string]map[string]clients.Saved{}}
	own, err := s.load(ctx, s.key(s.instance))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		// Not fatal: counting starts afresh, and the file is replaced.
		logger.Error("reading the stored usage of the named clients", zap.Error(err))
	default:
		s.restored = own.Clients
	}
	s.readPeers(ctx)
	go s.loop()
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

// take hands a new meter what this instance stored of its client.
func (s *usageSyncer) take(name string) (clients.Saved, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	saved, ok := s.restored[name]
	delete(s.restored, name)
	return saved, ok
}

// others is the tokens other instances counted for the client in the
// budget window that begins at window.
func (s *usageSyncer) others(name string) func(window time.Time) int64 {
	return func(window time.Time) int64 {
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
}

func (s *usageSyncer) loop() {
	defer close(s.done)
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), s.every+10*time.Second)
			s.save(ctx)
			s.readPeers(ctx)
			cancel()
		}
	}
}

// save stores every meter of this process, and what was restored for
// clients no config has now (they may come back).
func (s *usageSyncer) save(ctx context.Context) {
	f := usageFile{Instance: s.instance, SavedAt: time.Now().UTC(), Clients: map[string]clients.Saved{}}
	s.mu.Lock()
	for name, saved := range s.restored {
		f.Clients[name] = saved
	}
	s.mu.Unlock()
	clientMeters.Range(func(key, value any) bool {
		f.Clients[key.(string)] = value.(heldMeter).Save()
		return true
	})
	raw, err := json.Marshal(f)
	if err == nil {
		err = s.storage.Store(ctx, s.key(s.instance), raw)
	}
	if err != nil {
		s.logger.Error("storing the usage of the named clients", zap.Error(err))
	}
}

func (s *usageSyncer) readPeers(ctx context.Context) {
	keys, err := s.storage.List(ctx, usagePrefix, false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.logger.Error("listing the other instances' usage", zap.Error(err))
		return
	}
	peers := map[string]map[string]clients.Saved{}
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
