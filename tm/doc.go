// Package tm is the transaction-stateful, forking proxy core of imsdlg
// (RFC 3261 §16 on top of sipgo's transport and transaction layers).
//
// sipgo gives parsing, transports and single client/server transactions; it
// does not give a proxy. tm owns what sits between them: request validation
// (§16.3), Route pre-processing (§16.4), the response context of a proxied
// request with its parallel and serial branches (§16.5–16.7), per-branch
// fr_timeout / fr_inv_timeout timers, best-response selection in the order of
// the OpenSIPS tm module, CANCEL handling (§16.10, §9), stateless relaying of
// ACK for 2xx and of stray responses (§16.11), locally originated requests
// (t_uac_dlg) and replies (t_reply), and the statistics of all of it.
//
// The response context is a pure state machine (respCtx.Step(now, event)
// returning actions) so that every RFC rule is table-testable without
// sockets or sleeping; Proxy is the I/O around it.
//
// tm knows nothing of dialogs: the dialog module plugs in through the hook
// interfaces (Router, BranchHook, ReplyHook, FailureHook, FinalHook) and the
// Transaction handle.
package tm
