package imsdialog_test

import (
	"fmt"
	"log"

	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/tm"
)

// The dialog module plugs into tm as a module; then any call it holds can
// be ended from Go: a confirmed call with a BYE both ways, a ringing one
// with a CANCEL to the callees and a final reply to the caller (the seeds'
// dlg_end_dlg / terminate_dlg).
func ExampleManager_TerminateDlg() {
	dialogs, err := imsdialog.New(imsdialog.Options{Config: imsdialog.DefaultConfig()})
	if err != nil {
		log.Fatal(err)
	}
	defer dialogs.Close()
	router := tm.RouterFunc(func(r *tm.Request) tm.Decision { return tm.RelayTo() })
	p, err := tm.New(tm.Options{Config: tm.DefaultConfig(), Router: router,
		Modules: []tm.Module{dialogs.Module()}})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	// A call is named by its Call-ID and tags (dlg.list shows them).
	err = dialogs.TerminateDlg("a84b4c76e66710@pc33.example.com", "1928301774", "",
		imsdialog.SideBoth, "operator request", "X-Ended-By: noc")
	fmt.Println(err)
	// Output: call-id "a84b4c76e66710@pc33.example.com" from-tag "1928301774" to-tag "": dialog not found
}
