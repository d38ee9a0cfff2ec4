package events

import (
	"context"
	"fmt"
	"time"
)

// StateChanged is the name of the event published for a dialog state
// change, as OpenSIPS names it, so consumers written for OpenSIPS's event
// interface recognise it.
const StateChanged = "E_DLG_STATE_CHANGED"

// Event is one dialog state change. The states are the dialog module's
// numbers (1 unconfirmed .. 5 terminated) with their names, carried as
// given: the names travel with the numbers so a consumer need not keep a
// copy of the table in step with the proxy.
type Event struct {
	Name string `json:"event"` // StateChanged when left empty
	// The dialog's ids, as OpenSIPS exposes them (event_id_format picks
	// which go out): ID the did in hex "h_entry.h_id", HashEntry and
	// HashID its two halves, DBID them as one integer (h_entry<<32 | h_id,
	// OpenSIPS's dlg_id column).
	ID           string    `json:"id,omitempty"`
	HashEntry    *uint32   `json:"hash_entry,omitempty"`
	HashID       *uint32   `json:"hash_id,omitempty"`
	DBID         *uint64   `json:"db_id,omitempty"`
	CallID       string    `json:"callid"`
	FromTag      string    `json:"from_tag"`
	ToTag        string    `json:"to_tag"`
	OldState     int       `json:"old_state"`
	NewState     int       `json:"new_state"`
	OldStateName string    `json:"old_state_name"`
	NewStateName string    `json:"new_state_name"`
	Time         time.Time `json:"time"` // when the state changed; now when zero
	Node         string    `json:"node,omitempty"`
	// EndReason says why a dialog ended (failed, cancelled, bye_caller,
	// bye_callee, expired, terminated, ping_timeout, no_ack), on the change
	// to TERMINATED and after.
	EndReason string `json:"end_reason,omitempty"`
}

// IDFormat picks the ids an event carries (OpenSIPS's event_id_format);
// the zero value carries them all.
type IDFormat int

const (
	IDsAll  IDFormat = iota // event_id_format 2: id, db_id, hash_entry, hash_id
	IDsHash                 // event_id_format 0: hash_entry and hash_id
	IDsID                   // event_id_format 1: id and db_id
)

// ParseIDFormat reads an event_id_format value (0, 1 or 2).
func ParseIDFormat(n int) (IDFormat, error) {
	switch n {
	case 0:
		return IDsHash, nil
	case 1:
		return IDsID, nil
	case 2:
		return IDsAll, nil
	}
	return 0, fmt.Errorf("events.event_id_format = %d: must be 0 (hash_entry, hash_id), 1 (id, db_id) or 2 (all)", n)
}

// applyIDFormat keeps the ids the format exposes.
func (ev *Event) applyIDFormat(f IDFormat) {
	switch f {
	case IDsHash:
		ev.ID, ev.DBID = "", nil
	case IDsID:
		ev.HashEntry, ev.HashID = nil, nil
	}
}

// WithIDs sets the dialog's ids from its table position.
func (ev *Event) WithIDs(hEntry, hID uint32) {
	db := uint64(hEntry)<<32 | uint64(hID)
	ev.HashEntry, ev.HashID, ev.DBID = &hEntry, &hID, &db
}

// Sink is a destination for events.
//
// Send delivers one batch or reports why it could not; it must honour
// ctx, which is cancelled when Close gives up flushing, and bound its own
// round trip, because the publisher's single worker waits for it. Send
// must neither modify nor keep batch: the worker reuses it, and hands the
// same batch to every sink at once. The publisher never calls Send of one
// sink concurrently. Name labels the sink's metrics and log lines, so it
// must be unique among a publisher's sinks.
//
// A sink that also implements io.Closer is closed by Publisher.Close.
type Sink interface {
	Name() string
	Send(ctx context.Context, batch []Event) error
}
