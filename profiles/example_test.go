package profiles_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/imsdlg/imsdlg/cachedb"
	"github.com/imsdlg/imsdlg/profiles"
)

// A limit shared by every node: at most two calls per caller across the
// cluster. "caller/s" is a shared profile with a value; its counts live in
// the shared store, a cachedb.Redis in production (the keys dlg_val_,
// dlg_size_ that OpenSIPS nodes read too). Here an in-memory store stands
// in for it; two Sets on it are two nodes.
func ExampleSet_SetProfile_sharedLimit() {
	shared := cachedb.NewMemory(cachedb.DefaultKeys(), 0, nil)
	cfg := profiles.Config{WithValue: []string{"caller/s"}}
	nodeA, err := profiles.New(cfg, nil, shared, "node-a")
	if err != nil {
		log.Fatal(err)
	}
	nodeB, err := profiles.New(cfg, nil, shared, "node-b")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	const limit = 2
	for i, n := range []*profiles.Set{nodeA, nodeB, nodeA} {
		dialog := fmt.Sprintf("%d.1", i+1)
		count, err := n.SetProfile(ctx, dialog, "caller/s", "alice@example.com", limit)
		switch {
		case errors.Is(err, cachedb.ErrLimit):
			fmt.Printf("call %d refused: %d calls up\n", i+1, count)
		case err != nil:
			log.Fatal(err)
		default:
			fmt.Printf("call %d admitted: %d calls up\n", i+1, count)
		}
	}
	// A call ends: its node takes it out, and the next one fits.
	if err := nodeA.EndDialog(ctx, "1.1"); err != nil {
		log.Fatal(err)
	}
	size, _ := nodeB.Size(ctx, "caller/s", "alice@example.com")
	fmt.Println("calls up after one ended:", size)
	// Output:
	// call 1 admitted: 1 calls up
	// call 2 admitted: 2 calls up
	// call 3 refused: 2 calls up
	// calls up after one ended: 1
}
