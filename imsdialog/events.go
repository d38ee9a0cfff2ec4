package imsdialog

import (
	"log/slog"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/dlgout"
	"github.com/imsdlg/imsdlg/tm"
)

// Header is one header line of a request or reply the cell asks for.
type Header struct{ Name, Value string }

// EventKind is what happened to a dialog.
type EventKind uint8

const (
	// EvCreated: the dialog was admitted and its INVITE goes on.
	EvCreated EventKind = iota + 1
	// EvSpiral: the INVITE came back to us through an AS.
	EvSpiral
	// EvReply: a reply on Branch of the dialog's INVITE (Reply).
	EvReply
	// EvOutcome: how the INVITE transaction ended upstream (Outcome, Code).
	EvOutcome
	// EvInviteDone: the INVITE transaction finished; the legs that did not
	// answer are pruned.
	EvInviteDone
	// EvRequest: a request within the dialog (Request).
	EvRequest
	// EvRequestReply: a reply to a request within the dialog (Method, Code).
	EvRequestReply
	// EvTimeout: the dialog's lifetime timer fired.
	EvTimeout
	// EvByeWaitOver: the wait for the replies to our BYEs ended.
	EvByeWaitOver
	// EvTerminate: dlg_terminate (Side, Code, Reason, Headers).
	EvTerminate
	// EvByeDone: a BYE we sent got its final reply (Side, Code; Code 0:
	// none came).
	EvByeDone
	// EvSetTimeout: a new lifetime from now (Timeout).
	EvSetTimeout
	// EvPingTimer: options_ping_interval went by: ping again, or end the
	// dialog when the last ping of a side is still unanswered.
	EvPingTimer
	// EvPingDone: an OPTIONS ping got its final reply (Side, Code; Code 0:
	// none came, or it could not be sent).
	EvPingDone
	// EvSetPing: the parties to ping from now on (Ping).
	EvSetPing
	// EvAckTimeout: ack_timeout went by since the answer, or since the
	// callee last repeated it unACKed.
	EvAckTimeout
	// EvAnswerRepeated: the answering callee retransmitted its 2xx (Reply
	// facts): it has no ACK.
	EvAnswerRepeated
	// EvReinvitePingTimer: reinvite_ping_interval went by: ping again with
	// re-INVITEs, or end the dialog when the last one of a side is still
	// unanswered.
	EvReinvitePingTimer
	// EvSetReinvitePing: the parties to ping with re-INVITEs from now on
	// (Ping).
	EvSetReinvitePing
	// EvSetEndRaces: the dialog's flag E on or off (On).
	EvSetEndRaces
)

// Request is what the cell reads off a request within the dialog.
type Request struct {
	Method     string
	CSeq       uint32
	FromCaller bool
	// FromTag and ToTag are the request's; the callee leg it concerns is the
	// To tag of a request from the caller and the From tag of one from the
	// callee.
	FromTag, ToTag string
	// SDP is the request's session description (nil when none): the
	// sender's, kept for re-INVITE pings.
	SDP []byte
	// Contact is the Contact of a target refresh (a re-INVITE or UPDATE,
	// or the 2xx answering one): the sender's new remote target (RFC 3261
	// §12.2). nil otherwise.
	Contact *sip.Uri
}

// Event is fed to Cell.Step: facts read off messages and timers, never the
// messages themselves.
type Event struct {
	Kind EventKind
	// EvReply: the branch of the INVITE and what its reply says.
	Branch int
	Reply  dlgout.Reply
	// EvOutcome: how the INVITE ended (Code its final code).
	Outcome tm.OutcomeKind
	// EvOutcome: the caller had cancelled the INVITE when its final went
	// up (tm.Outcome.AfterCancel).
	AfterCancel bool
	// EvSetEndRaces: the flag's value.
	On bool
	// EvOutcome, EvRequestReply, EvByeDone: a status code. EvTerminate: the
	// final code for an early dialog (0: early_terminate_code).
	Code int
	// EvRequest; EvRequestReply: the request the reply answers (its
	// direction and tags; Request.SDP is the reply's session description).
	Request Request
	// EvRequestReply: the method the reply answers. EvPingDone: the ping's
	// method (OPTIONS or INVITE).
	Method string
	// EvTerminate, EvByeDone.
	Side Side
	// EvTerminate: text of the Reason header, and extra header lines for
	// the BYEs or the final reply.
	Reason  string
	Headers []Header
	// EvSetTimeout.
	Timeout time.Duration
	// EvSetPing, EvSetReinvitePing.
	Ping Ping
}

// ActionKind is what the manager must do.
type ActionKind uint8

const (
	// ActFire: run the callbacks of Callback.
	ActFire ActionKind = iota + 1
	// ActStateChanged: From -> To (statistics, E_DLG_STATE_CHANGED); After
	// is the call's duration since its answer when an answered call ends.
	ActStateChanged
	// ActArmTimer: (re)arm Timer to fire After from now.
	ActArmTimer
	// ActStopTimer: stop Timer.
	ActStopTimer
	// ActSend: send the in-dialog request Send.
	ActSend
	// ActReplyUpstream: answer the INVITE with Code, Reason and Headers
	// (t_reply), which CANCELs its pending branches with the same Reason.
	ActReplyUpstream
	// ActRelease: the dialog leaves its limits and profiles.
	ActRelease
	// ActPersist: what db_mode saves of the dialog changed (or it ended).
	ActPersist
	// ActDestroy: the dialog leaves the table.
	ActDestroy
	// ActLog: log Msg at Level, about the leg Leg when set, with Reason.
	ActLog
	// ActAbsorb: do not relay the 2xx this reply event is about (the cell
	// ends that session itself).
	ActAbsorb
)

// Timer names one of a dialog's timers.
type Timer uint8

const (
	// TimerLifetime is default_timeout or the dialog's own timeout.
	TimerLifetime Timer = iota + 1
	// TimerByeWait bounds the wait for the replies to BYEs (bye_timeout).
	TimerByeWait
	// TimerPing is the OPTIONS keepalive's (options_ping_interval).
	TimerPing
	// TimerAck bounds the wait for the caller's ACK of the answer
	// (ack_timeout).
	TimerAck
	// TimerReinvitePing is the re-INVITE keepalive's
	// (reinvite_ping_interval).
	TimerReinvitePing

	numTimers = int(TimerReinvitePing)
)

// timerEvents is the event each timer steps when it fires.
var timerEvents = [numTimers + 1]EventKind{TimerLifetime: EvTimeout, TimerByeWait: EvByeWaitOver, TimerPing: EvPingTimer,
	TimerAck: EvAckTimeout, TimerReinvitePing: EvReinvitePingTimer}

// Action is one instruction for the manager, with the data it needs ready.
type Action struct {
	Kind     ActionKind
	Callback Callback
	From, To State
	Timer    Timer
	After    time.Duration
	Send     *OutRequest
	// *Detail is set for ActReplyUpstream and ActLog only: the common
	// actions stay 32 bytes (a step's list was a tenth of the bytes a
	// call allocates, issue 14).
	*Detail
}

// Detail is the payload of the rare actions.
type Detail struct {
	// ActReplyUpstream.
	Code    int
	Reason  string
	Headers []Header
	// ActLog (Reason is its why).
	Level slog.Level
	Msg   string
	Leg   string
}

// OutRequest is a request within the dialog the cell wants sent, complete:
// the manager only turns it into a message (buildRequest).
type OutRequest struct {
	Method sip.RequestMethod
	// Target is the Request-URI: the remote target of the side it goes to.
	Target sip.Uri
	// Route is the route set towards that side, nearest hop first.
	Route []sip.Uri
	// Dst is "udp:ip:port" when the route set is empty and that side is
	// reached where its messages came from.
	Dst     string
	From    sip.FromHeader
	To      sip.ToHeader
	CallID  string
	CSeq    uint32
	Headers []Header
	// Body goes with a Content-Type header among Headers (a re-INVITE
	// ping's SDP).
	Body []byte
	// Await: the cell waits for the final reply, as EvByeDone for Side (as
	// EvPingDone for an OPTIONS or a re-INVITE ping).
	Await bool
	Side  Side
}

func fire(out []Action, c Callback) []Action {
	return add(out, Action{Kind: ActFire, Callback: c})
}

// add appends to a step's actions. The list comes from actionPool, with
// room for the longest steps (a call ending makes up to eight actions of
// 160 bytes): a list made per step was 640 bytes and an allocation of
// every step, and one grown by doubling several (issue 14). The Manager
// gives a list back once its actions are carried out (releaseActions);
// other callers of Step leave it to the GC.
func add(out []Action, a ...Action) []Action {
	if out == nil {
		out = actionPool.Get().(*actionBuf)[:0]
	}
	return append(out, a...)
}

type actionBuf [8]Action

var actionPool = sync.Pool{New: func() any { return new(actionBuf) }}

// releaseActions returns the list of a step to actionPool once nothing
// reads it any more. A list that outgrew the pooled array (or never came
// from it: its capacity differs) is left to the GC.
func releaseActions(acts []Action) {
	if cap(acts) != len(actionBuf{}) {
		return
	}
	b := (*actionBuf)(acts[:len(actionBuf{})])
	*b = actionBuf{} // no pointer of a finished step stays reachable
	actionPool.Put(b)
}

func logAction(level slog.Level, msg, leg, reason string) Action {
	return Action{Kind: ActLog, Detail: &Detail{Level: level, Msg: msg, Leg: leg, Reason: reason}}
}

// reasonHeader is the Reason header of everything the dialog module sends
// (RFC 3326, TS 24.229 §5.4.5).
func reasonHeader(cause int, text string) Header {
	return Header{Name: "Reason", Value: tm.ReasonValue("SIP", cause, text)}
}
