// Package cachedb owns the shared store behind dialog profiles: the counters
// that several proxy nodes (and OpenSIPS nodes) read and change to enforce
// call limits across a cluster, and the per-node membership records that let
// a crashed node's counts be removed exactly once.
//
// It knows nothing about SIP or dialogs beyond an opaque dialog id; the
// profiles package decides what is counted and when. Two implementations
// satisfy [Store] and pass one conformance suite: [Memory] (one node, tests,
// development) and [Redis] (go-redis UniversalClient: single node, Sentinel
// or Cluster, chosen by the URL given to [ParseURL]).
//
// # Keys
//
// Counter names are the ones OpenSIPS writes, so both can share one Redis:
//
//	<ValuePrefix><name>_<base64std(value)>   dlg_val_caller_MTIzNA==  dialogs with that value
//	<SizePrefix><name>                       dlg_size_caller          total of a profile with value
//	<NoValuePrefix><name>                    dlg_noval_trunk          count of a profile without value
//
// Membership is ours (OpenSIPS does not keep it): one sorted set per node,
// imsdlg_member_<node>, whose members are "<kind>\x00<name>\x00<base64(value)>\x00<dialog>"
// (kind "v" with value, "n" without) and whose score is the member's expiry
// in Unix seconds. A sorted set rather than a hash because Redis 7.0 has no
// per-field hash expiry, and rather than one key per member so that Reconcile
// reads one key instead of SCANning the keyspace. The value is base64 encoded
// so a value holding NUL cannot break the record apart.
//
// # TTL
//
// Every change sets the TTL (profile_timeout) on every key it touches. A
// membership whose expiry has passed counts as gone: its share of the
// counters went with the counters' TTL, so Remove and Reconcile drop it
// without decrementing.
//
// # Atomicity
//
// On a single node and through Sentinel each Add and Remove is one Lua script
// (EVALSHA, falling back to EVAL): membership check, limit check, INCR/DECR
// with a floor at zero and EXPIRE happen in one atomic step and one round
// trip. In Cluster mode the OpenSIPS-compatible names of one change hash to
// different slots, which a script may not span, so each step is a separate
// single-key script: the membership claim, then the limited counter (check and
// increment still atomic, so a limit is still exact), then the size counter.
// A crash between steps can leave a membership without its counts or a value
// counter without its size; the floor at zero keeps the damage bounded and the
// TTL removes it.
package cachedb
