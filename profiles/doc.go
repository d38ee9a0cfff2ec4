// Package profiles implements OpenSIPS-style dialog profiles
// (set_dlg_profile, unset_dlg_profile, is_in_profile, get_profile_size and
// the dlg.profile_* management calls) on top of [cachedb.Store].
//
// It knows dialogs only by an opaque id ("h_entry.h_id"); the dialog module
// calls it and must call [Set.Release] (or [Set.EndDialog], which does not
// retry on its own) whenever a dialog ends, however it ends (BYE,
// terminate, timeout, failed early call), and must not reuse a dialog id.
// This package imports neither imsdialog nor tm.
//
// # Declaration
//
// Profiles are declared once, in [Config]: WithValue (profiles_with_value)
// and NoValue (profiles_no_value). A name ending in "/s" is shared: it is
// counted in the shared store (Redis), so every node sees one count and a
// limit holds across nodes. Other profiles are counted in the node-local
// store. The name used everywhere else (in calls, in the store, in keys) is
// the bare name, as OpenSIPS does: "caller/s" with value "1234" is counted
// under dlg_val_caller_MTIzNA== and dlg_size_caller. Calls accept the bare
// name or, for a shared profile, the declared name with "/s". OpenSIPS' "/b"
// (clusterer broadcast) is not supported and is a configuration error.
//
// # Local record
//
// Each Set keeps what this node has put in profiles: dialog -> memberships
// and profile -> value -> dialogs. is_in_profile, profile_list_dlgs and
// dlg.list_ctx read it without a round trip; EndDialog uses it to know what
// to remove. As in OpenSIPS, profile_list_dlgs shows only this node's
// dialogs, while sizes and values of a shared profile are cluster-wide.
//
// # Locking
//
// One sync.RWMutex guards the record (maps only; never held across a store
// call). It is a single lock rather than a sharded one because profile calls
// happen a few times per call, not per message, and each critical section is
// a few map operations; a sharded lock would complicate the profile index,
// which is keyed by profile, not by dialog. In addition each dialog has its
// own mutex held across its store calls, so the changes of one dialog are
// serialized: an EndDialog racing a SetProfile of the same dialog either
// sees the new membership and removes it, or runs first; a membership is
// never left counted for a dialog that EndDialog has already finished with
// (unless SetProfile is called again after EndDialog returned, which the
// dialog module must not do).
//
// # Failures
//
// A shared store is a Redis across the network, so it will be slow or
// unreachable at times; OpenSIPS then silently loses decrements and counts
// stay too high until their TTL. Here the record follows what the store may
// hold, so nothing it may have counted is forgotten:
//
//   - a failed Remove keeps the membership recorded, so a later EndDialog
//     (or UnsetProfile) retries it; EndDialog tries every membership and
//     returns the first error;
//   - a failed Add that is a refusal (cachedb.ErrLimit) records nothing,
//     but any other failure (a timeout, a lost reply) may have been applied,
//     so the membership is kept as uncertain: not reported by IsInProfile,
//     Memberships or Dialogs, since it may not count, but removed with the
//     dialog's other memberships, which is safe because removing a member
//     the store never added changes nothing;
//   - [Set.Release] is EndDialog for a dialog that is gone: the dialog
//     module cannot wait for Redis to come back, so a dialog whose removal
//     failed is remembered as pending and [Set.RetryPending] (run by
//     [Set.Run]) ends it later. A pass tries a failing store once and leaves
//     the other dialogs that need it for the next pass, because during an
//     outage each attempt waits out the same timeout.
//
// Whether to admit a call whose profile check failed (fail_open or
// fail_closed) is the caller's decision, since only the caller knows which
// calls matter; it reports each decision with CountFailOpen or
// CountFailClosed so they show next to the store errors that caused them.
//
// # Health and metrics
//
// Each store's health is the outcome of its last call, not a probe: that
// costs nothing on the call path and is what the calls experience. A
// store's outage is logged once when it starts (Warn) and once when it ends
// (Info, with its duration), because during an outage every call fails and
// a line per call would bury the rest of the log. Limits, unknown profiles
// and bad values are answers, not failures; a call its caller cancelled
// says nothing about the store and is not counted, while a caller deadline
// that ran out is (the store was too slow for the call). [Set.Healthy]
// reports the shared store; with no traffic it keeps its last answer, which
// is why Run pings a failing store through [Set.Ping].
//
// [Set.Stats] is a prometheus.Collector (metrics named imsdlg_profile_*)
// with a Snapshot for the management API. Profile sizes are read at scrape
// time for local profiles only: a shared size would cost a Redis round trip
// per profile per scrape, and is the same cluster-wide number on every
// node, better read once through dlg.profile_get_size.
package profiles
