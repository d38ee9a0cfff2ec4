// Package events tells systems outside the proxy (billing, monitoring,
// call-detail correlation) that a dialog changed state, so they need not
// poll the dialog table or parse logs: every change becomes an
// E_DLG_STATE_CHANGED event, after the OpenSIPS event of that name,
// delivered to a Redis Stream, an HTTP webhook, or both.
//
// Call handling comes first. A dialog state change happens on the SIP
// path, and a slow or dead consumer must never delay a reply, so Publish
// only ever puts the event on a bounded queue and returns; when the queue
// is full the event is dropped and counted rather than waited for. One
// worker drains the queue in batches, because one Redis pipeline or one
// HTTP request per batch keeps up with a burst of call set-ups where one
// round trip per event would not.
//
// Delivery is therefore best effort, and says so in its metrics: a sink
// that fails gets one retry of the batch, then the batch is given up for
// that sink (counted) so that an outage cannot stall the queue behind it.
// An outage is logged once when it starts and once when it ends, not once
// per batch, so that a Redis restart does not flood the log at call rate.
// A retried batch may reach a sink twice; consumers that care should key
// on (id, new_state, time).
//
// The Redis Stream is the durable choice (consumer groups, replay after a
// consumer restart, trimmed by MAXLEN so it cannot grow without bound);
// the webhook is the simple one, for integrations that only speak HTTP.
package events
