package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/internal/mgmt"
	"github.com/imsdlg/imsdlg/profiles"
)

// CodeStoreUnavailable is the JSON-RPC error of a profile call whose cache
// DB did not answer: the caller may retry, unlike a bad argument.
const CodeStoreUnavailable = -32010

type profileParams struct {
	Profile string `json:"profile" mgmt:"required"`
	Value   string `json:"value"`
}

type profileValue struct {
	Value string `json:"value"`
	Count int64  `json:"count"`
}

type profileInfo struct {
	Name      string `json:"name"`
	WithValue bool   `json:"with_value"`
	Shared    bool   `json:"shared"`
}

// profileError turns a profiles error into the JSON-RPC error an operator
// can act on.
func profileError(err error) error {
	switch {
	case errors.Is(err, profiles.ErrUnknownProfile):
		return mgmt.NotFound("%v", err)
	case errors.Is(err, profiles.ErrValue):
		return mgmt.InvalidParams("argument \"value\": %v", err)
	}
	return mgmt.NewError(CodeStoreUnavailable, "profile store unavailable: %v", err)
}

// registerProfileMethods adds the dlg.profile_* management calls of the
// OpenSIPS dialog module; their JSON shapes are a contract.
func registerProfileMethods(api *mgmt.Server, m *imsdialog.Manager, set *profiles.Set) {
	decode := func(p json.RawMessage) (profileParams, error) {
		var pp profileParams
		if err := mgmt.DecodeParams(p, &pp); err != nil {
			return pp, err
		}
		if !declared(set, pp.Profile) {
			return pp, mgmt.NotFound("profile %q is not declared (dlg.list_all_profiles lists them)", pp.Profile)
		}
		return pp, nil
	}
	api.Register("dlg.profile_get_size", mgmt.Positional(func(ctx context.Context, p json.RawMessage) (any, error) {
		pp, err := decode(p)
		if err != nil {
			return nil, err
		}
		n, err := set.Size(ctx, pp.Profile, pp.Value)
		if err != nil {
			return nil, profileError(err)
		}
		return map[string]any{"profile": pp.Profile, "value": pp.Value, "size": n}, nil
	}, "profile", "value"))
	api.Register("dlg.profile_get_values", mgmt.Positional(func(ctx context.Context, p json.RawMessage) (any, error) {
		var pp struct {
			Profile string `json:"profile" mgmt:"required"`
		}
		if err := mgmt.DecodeParams(p, &pp); err != nil {
			return nil, err
		}
		vals, err := set.Values(ctx, pp.Profile)
		if err != nil {
			return nil, profileError(err)
		}
		out := make([]profileValue, 0, len(vals))
		for v, n := range vals {
			out = append(out, profileValue{Value: v, Count: n})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Value < out[j].Value })
		return map[string]any{"profile": pp.Profile, "values": out}, nil
	}, "profile"))
	listDlgs := mgmt.Positional(func(_ context.Context, p json.RawMessage) (any, error) {
		pp, err := decode(p)
		if err != nil {
			return nil, err
		}
		// This node's dialogs only: the others' live in their memory.
		out := []dialogJSON{}
		for _, id := range set.Dialogs(pp.Profile, pp.Value) {
			if d := m.ByDID(id); d != nil {
				out = append(out, dialogView(d.Info(false)))
			}
		}
		return map[string]any{"profile": pp.Profile, "value": pp.Value, "dialogs": out}, nil
	}, "profile", "value")
	api.Register("dlg.profile_list_dlgs", listDlgs)
	// Kamailio's name for it (the ims_dialog manual's dlg.profile_list).
	api.Register("dlg.profile_list", listDlgs)
	api.Register("dlg.profile_end_dlgs", mgmt.Positional(func(_ context.Context, p json.RawMessage) (any, error) {
		pp, err := decode(p)
		if err != nil {
			return nil, err
		}
		ended := 0
		var errs []error
		for _, id := range set.Dialogs(pp.Profile, pp.Value) {
			d := m.ByDID(id)
			if d == nil {
				continue
			}
			switch err := m.Terminate(d, imsdialog.SideBoth, 0, "profile_end_dlgs"); {
			case err == nil:
				ended++
			case !errors.Is(err, imsdialog.ErrNotFound):
				errs = append(errs, fmt.Errorf("dialog %s: %w", id, err))
			}
		}
		if len(errs) > 0 {
			return nil, mgmt.NewError(mgmt.CodeInternalError, "ended %d dialogs; %v", ended, errors.Join(errs...))
		}
		return map[string]any{"profile": pp.Profile, "value": pp.Value, "ended": ended}, nil
	}, "profile", "value"))
	api.Register("dlg.list_all_profiles", func(_ context.Context, p json.RawMessage) (any, error) {
		if err := mgmt.DecodeParams(p, &struct{}{}); err != nil {
			return nil, err
		}
		out := []profileInfo{}
		for _, in := range set.Declared() {
			out = append(out, profileInfo{Name: in.Name, WithValue: in.WithValue, Shared: in.Shared})
		}
		return map[string]any{"profiles": out}, nil
	})
}

// declared reports whether name (bare, or with "/s" for a shared profile)
// is a declared profile.
func declared(set *profiles.Set, name string) bool {
	for _, in := range set.Declared() {
		if name == in.Name || (in.Shared && name == in.Name+profiles.SharedSuffix) {
			return true
		}
	}
	return false
}

// ready reports whether the cache DB answers, for /readyz: in fail_closed
// a node that cannot count shared profiles rejects every limited call, so
// a load balancer should send them elsewhere.
func (rt *profileRuntime) ready(ctx context.Context) error {
	if rt.shared == nil || rt.failOpen {
		return nil
	}
	if err := rt.shared.Client().Ping(ctx).Err(); err != nil {
		return fmt.Errorf("profiles.cachedb_url: %w", err)
	}
	return nil
}
