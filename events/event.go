package events

import (
	"context"
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
	Name         string    `json:"event"` // StateChanged when left empty
	ID           string    `json:"id"`    // dialog id, "h_entry.h_id"
	CallID       string    `json:"callid"`
	FromTag      string    `json:"from_tag"`
	ToTag        string    `json:"to_tag"`
	OldState     int       `json:"old_state"`
	NewState     int       `json:"new_state"`
	OldStateName string    `json:"old_state_name"`
	NewStateName string    `json:"new_state_name"`
	Time         time.Time `json:"time"` // when the state changed; now when zero
	Node         string    `json:"node,omitempty"`
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
