package profiles

import (
	"context"
	"errors"
	"fmt"
)

// Restore gives a dialog restored from the dialog store (db_mode) its
// memberships back, without counting any twice. A shared profile's count
// survived the restart in the cache DB (the node's reconcile keeps the
// memberships of restored dialogs), so the membership is only recorded
// here: if the dialog in fact ended after it was saved, its count is
// already gone, and the Remove when it ends again changes nothing. A local
// profile's count died with the process, so it is counted again.
func (s *Set) Restore(ctx context.Context, dialogID string, ms []Membership) error {
	if dialogID == "" {
		return errors.New("profiles: restore: empty dialog id")
	}
	var errs []error
	for _, m := range ms {
		p, err := s.lookup(m.Profile)
		if err != nil {
			errs = append(errs, fmt.Errorf("profiles: restore dialog %s: %w", dialogID, err))
			continue
		}
		if err := checkValue(p, m.Value); err != nil {
			errs = append(errs, fmt.Errorf("profiles: restore dialog %s: %w", dialogID, err))
			continue
		}
		if !p.info.Shared {
			if _, err := s.SetProfile(ctx, dialogID, m.Profile, m.Value, 0); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		d := s.acquire(dialogID, true)
		s.record(dialogID, d, Membership{Profile: p.info.Name, Value: m.Value}, true)
		s.release(dialogID, d)
	}
	return errors.Join(errs...)
}

// KeepRestored is the keep function for cachedb.Store.Reconcile: the
// memberships of the dialogs restored are still live.
func KeepRestored(dids []string) func(dialog string) bool {
	keep := make(map[string]struct{}, len(dids))
	for _, d := range dids {
		keep[d] = struct{}{}
	}
	return func(dialog string) bool { _, ok := keep[dialog]; return ok }
}
