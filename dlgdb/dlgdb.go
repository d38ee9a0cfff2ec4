package dlgdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imsdlg/imsdlg/cachedb"
)

// KeyPrefix starts the per-node hash of dialog records.
const KeyPrefix = "imsdlg_dlg_"

// Record is a persisted dialog. Version lets a newer proxy read what an
// older one wrote.
type Record struct {
	Version int    `json:"v"`
	HEntry  uint32 `json:"h_entry"`
	HID     uint32 `json:"h_id"`
	CallID  string `json:"callid"`
	FromTag string `json:"from_tag"`
	// UpBranch is the Via branch of the INVITE that created the dialog
	// (spiral detection).
	UpBranch string `json:"up_branch,omitempty"`
	From     string `json:"from"` // the caller's From header value
	To       string `json:"to"`   // the INVITE's To header value, no tag

	CallerTarget string   `json:"caller_target"`
	CallerRoute  []string `json:"caller_route,omitempty"`
	CallerDst    string   `json:"caller_dst,omitempty"`
	CallerCSeq   uint32   `json:"caller_cseq"`
	InviteCSeq   uint32   `json:"invite_cseq"`

	Callee Leg `json:"callee"`

	State   int       `json:"state"`
	Created time.Time `json:"created"`
	Start   time.Time `json:"start"`
	Timeout int64     `json:"timeout_ms"` // lifetime after Start
	// Deadline is when the dialog times out (default_timeout, or what
	// SetTimeout made it); zero when no timer runs.
	Deadline time.Time `json:"deadline"`

	Vars     map[string]string `json:"vars,omitempty"`
	Flags    uint32            `json:"flags,omitempty"`
	Profiles []Membership      `json:"profiles,omitempty"`
	// CallerSDP is the caller's last session description, kept only for
	// re-INVITE pings (base64 in JSON).
	CallerSDP []byte `json:"caller_sdp,omitempty"`
	// Raced: a call answered across the caller's CANCEL that ends at its
	// Deadline as a race (dialog.end_races).
	Raced bool `json:"raced,omitempty"`
}

// Leg is the callee leg that answered.
type Leg struct {
	ToTag        string   `json:"to_tag"`
	RemoteTarget string   `json:"target"`
	RouteSet     []string `json:"route,omitempty"`
	LocalCSeq    uint32   `json:"local_cseq"`
	RemoteCSeq   uint32   `json:"remote_cseq"`
	// CalleeShift and CallerShift count the requests the proxy put into
	// the leg itself, towards the callee and the caller (pings, BYE): the
	// parties' later requests are numbered that much higher on their way.
	CalleeShift uint32    `json:"callee_shift,omitempty"`
	CallerShift uint32    `json:"caller_shift,omitempty"`
	SDP         []byte    `json:"sdp,omitempty"`
	Transport   string    `json:"transport,omitempty"`
	Source      string    `json:"source,omitempty"`
	Branch      int       `json:"branch"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
}

// Membership is one profile the dialog is in.
type Membership struct {
	Profile string `json:"profile"`
	Value   string `json:"value,omitempty"`
}

// CurrentVersion is the Version of the records this code writes.
const CurrentVersion = 1

// DID is the record's field name: hex h_entry "." hex h_id.
func (r *Record) DID() string { return fmt.Sprintf("%x.%x", r.HEntry, r.HID) }

// Change is one write of a flush: Rec is stored under DID, or, when Rec is
// nil, DID is deleted.
type Change struct {
	DID string
	Rec *Record
}

// ErrUnavailable wraps a Load that read nothing because the store did not
// answer: unlike records it could not decode, trying again may succeed.
var ErrUnavailable = errors.New("dialog store unavailable")

// Store keeps one node's records.
type Store interface {
	// Apply writes the changes in one round trip where the store can.
	Apply(ctx context.Context, node string, changes []Change) error
	// Load returns every record of node, sorted by did; records it cannot
	// read are reported in the error (joined) and skipped, the others are
	// still returned.
	Load(ctx context.Context, node string) ([]Record, error)
	// Replace makes recs the node's only records (dlg_restore_db: the
	// table truncated, then filled from memory), at once where the store
	// can: a reader sees the old set or the new one.
	Replace(ctx context.Context, node string, recs []Record) error
	Close() error
}

// Memory is a Store in memory, for tests and for db_mode 0 set-ups that
// want the code path.
type Memory struct {
	mu    sync.Mutex
	nodes map[string]map[string][]byte
}

// NewMemory returns an empty memory store.
func NewMemory() *Memory { return &Memory{nodes: map[string]map[string][]byte{}} }

// Apply implements Store.
func (m *Memory) Apply(_ context.Context, node string, changes []Change) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.nodes[node]
	if h == nil {
		h = map[string][]byte{}
		m.nodes[node] = h
	}
	for _, c := range changes {
		if c.Rec == nil {
			delete(h, c.DID)
			continue
		}
		b, err := json.Marshal(c.Rec)
		if err != nil {
			return fmt.Errorf("dlgdb: encode dialog %s: %w", c.DID, err)
		}
		h[c.DID] = b
	}
	return nil
}

// Replace implements Store.
func (m *Memory) Replace(_ context.Context, node string, recs []Record) error {
	h := make(map[string][]byte, len(recs))
	for i := range recs {
		b, err := json.Marshal(&recs[i])
		if err != nil {
			return fmt.Errorf("dlgdb: encode dialog %s: %w", recs[i].DID(), err)
		}
		h[recs[i].DID()] = b
	}
	m.mu.Lock()
	m.nodes[node] = h
	m.mu.Unlock()
	return nil
}

// Load implements Store.
func (m *Memory) Load(_ context.Context, node string) ([]Record, error) {
	m.mu.Lock()
	raw := make(map[string]string, len(m.nodes[node]))
	for k, v := range m.nodes[node] {
		raw[k] = string(v)
	}
	m.mu.Unlock()
	return decodeAll(node, raw)
}

// Close implements Store.
func (m *Memory) Close() error { return nil }

func decodeAll(node string, raw map[string]string) ([]Record, error) {
	out := make([]Record, 0, len(raw))
	var errs []error
	for did, v := range raw {
		var r Record
		if err := json.Unmarshal([]byte(v), &r); err != nil {
			errs = append(errs, fmt.Errorf("dlgdb: node %s dialog %s: %w", node, did, err))
			continue
		}
		if r.Version > CurrentVersion {
			errs = append(errs, fmt.Errorf("dlgdb: node %s dialog %s: record version %d is newer than this proxy's (%d)", node, did, r.Version, CurrentVersion))
			continue
		}
		if r.DID() != did {
			errs = append(errs, fmt.Errorf("dlgdb: node %s: record under %s names dialog %s", node, did, r.DID()))
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].HEntry != out[j].HEntry {
			return out[i].HEntry < out[j].HEntry
		}
		return out[i].HID < out[j].HID
	})
	return out, errors.Join(errs...)
}

// Redis is the Store in Redis (db_url).
type Redis struct {
	c       redis.UniversalClient
	timeout time.Duration
}

// RedisOptions configure NewRedis.
type RedisOptions struct {
	URL     string        // as cachedb.ParseURL: redis://, redis-sentinel://, redis-cluster://
	Timeout time.Duration // per round trip; 0: 1 s
}

// NewRedis connects lazily; it fails only on a bad URL.
func NewRedis(opts RedisOptions) (*Redis, error) {
	uo, err := cachedb.ParseURL(opts.URL)
	if err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	uo.DialTimeout, uo.ReadTimeout, uo.WriteTimeout, uo.PoolTimeout = opts.Timeout, opts.Timeout, opts.Timeout, opts.Timeout
	uo.ContextTimeoutEnabled = true
	return &Redis{c: redis.NewUniversalClient(uo), timeout: opts.Timeout}, nil
}

// Client exposes the client, for readiness checks.
func (r *Redis) Client() redis.UniversalClient { return r.c }

// Key is the hash of a node's records.
func Key(node string) string { return KeyPrefix + node }

// Apply implements Store: one pipeline (MULTI/EXEC, so a crash leaves
// all or none of a flush) of HSET and HDEL on the node's hash.
func (r *Redis) Apply(ctx context.Context, node string, changes []Change) error {
	if len(changes) == 0 {
		return nil
	}
	key := Key(node)
	var set []any
	var del []string
	for _, c := range changes {
		if c.Rec == nil {
			del = append(del, c.DID)
			continue
		}
		b, err := json.Marshal(c.Rec)
		if err != nil {
			return fmt.Errorf("dlgdb: encode dialog %s: %w", c.DID, err)
		}
		set = append(set, c.DID, b)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if len(set) > 0 {
			p.HSet(ctx, key, set...)
		}
		if len(del) > 0 {
			p.HDel(ctx, key, del...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dlgdb: write %d dialogs of node %s (key %s): %w", len(changes), node, key, err)
	}
	return nil
}

// Replace implements Store: DEL and HSET of the node's hash in one
// MULTI/EXEC.
func (r *Redis) Replace(ctx context.Context, node string, recs []Record) error {
	key := Key(node)
	set := make([]any, 0, 2*len(recs))
	for i := range recs {
		b, err := json.Marshal(&recs[i])
		if err != nil {
			return fmt.Errorf("dlgdb: encode dialog %s: %w", recs[i].DID(), err)
		}
		set = append(set, recs[i].DID(), b)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*r.timeout)
	defer cancel()
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		if len(set) > 0 {
			p.HSet(ctx, key, set...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dlgdb: replace the dialogs of node %s (key %s) with %d: %w", node, key, len(recs), err)
	}
	return nil
}

// Load implements Store.
func (r *Redis) Load(ctx context.Context, node string) ([]Record, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*r.timeout)
	defer cancel()
	raw, err := r.c.HGetAll(ctx, Key(node)).Result()
	if err != nil {
		return nil, fmt.Errorf("dlgdb: read dialogs of node %s (key %s): %w: %w", node, Key(node), ErrUnavailable, err)
	}
	return decodeAll(node, raw)
}

// Close implements Store.
func (r *Redis) Close() error { return r.c.Close() }
