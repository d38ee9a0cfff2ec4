// Package profiles implements OpenSIPS-style dialog profiles
// (set_dlg_profile, unset_dlg_profile, is_in_profile, get_profile_size and
// the dlg.profile_* management calls) on top of [cachedb.Store].
//
// It knows dialogs only by an opaque id ("h_entry.h_id"); the dialog module
// calls it and must call [Set.EndDialog] whenever a dialog ends, however it
// ends (BYE, terminate, timeout, failed early call). This package imports
// neither imsdialog nor tm.
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
// A store error leaves the local record as the store is: a failed Add
// records nothing, a failed Remove keeps the membership, so a later
// EndDialog (or UnsetProfile) retries it. EndDialog tries every membership
// and returns the first error.
package profiles
