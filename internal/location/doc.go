// Package location owns the registrar's binding table: which contacts an
// address-of-record (AOR) is reachable at right now. It is both the
// registrar's store (Register, RFC 3261 §10.3 steps 5–8) and the location
// service the proxy consults on every initial request (Lookup).
//
// The caller owns everything before step 5: the Request-URI domain check and
// authentication. Register trusts that the request is a REGISTER for a domain
// this node serves.
//
// Decisions that are not dictated by RFC 3261:
//
//   - AOR key (NormalizeAOR): "scheme:user@host[:port]". The scheme is kept
//     (sip and sips AORs are distinct), the user part stays case-sensitive
//     but is percent-decoded (§10.3 step 5), the host is lower-cased, and all
//     URI parameters, headers and any password are dropped. A port equal to the
//     scheme default (5060 for sip, 5061 for sips) is dropped so that
//     "sip:a@x" and "sip:a@x:5060" name the same user; any other port is kept
//     because it can denote a different domain service.
//   - More than Options.MaxContacts dynamic bindings is 403 Forbidden, not
//     503: 503 tells RFC 3263 clients to fail over to another registrar,
//     which would not help. Static bindings do not count towards the limit.
//   - A step 7 ordering failure (same Call-ID, CSeq not higher than stored)
//     is 500 with "out of order" in the reason. The whole request is
//     aborted, so no binding in it is changed (§10.3: all or nothing).
//   - Malformed q or expires Contact parameters and a malformed Expires header
//     are 400. §20.10 suggests treating a malformed expires as 3600; a
//     registrar that silently picks a lifetime hides UE bugs.
//   - A registered contact that equals a static contact (§19.1.4) is absorbed
//     by the static binding: it is not stored twice, so the proxy does not
//     fork to the same target twice. Static bindings are listed in 200
//     responses with expires=MaxExpires because §10.3 step 8 requires an
//     expires on every listed contact.
//   - Path (RFC 3327) is stored per binding and echoed in the 200 only when
//     the UE sent Supported: path.
package location
