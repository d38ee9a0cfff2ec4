package tm

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Module data on a transaction (OpenSIPS' transaction AVPs): keys of
// distinct types never collide, a second set replaces, a missing key is nil.
func TestTransactionValues(t *testing.T) {
	type keyA struct{}
	type keyB struct{}
	type keyS string
	tx := &Transaction{}
	assert.Nil(t, tx.Value(keyA{}))
	tx.SetValue(keyA{}, 1)
	tx.SetValue(keyB{}, "b")
	tx.SetValue(keyS("x"), 3)
	tx.SetValue(keyA{}, 2)
	assert.Equal(t, 2, tx.Value(keyA{}))
	assert.Equal(t, "b", tx.Value(keyB{}))
	assert.Equal(t, 3, tx.Value(keyS("x")))
	assert.Nil(t, tx.Value(keyS("y")))
	assert.Nil(t, tx.Value("x"), "a plain string is not keyS")
	tx.SetValue(keyB{}, nil)
	assert.Nil(t, tx.Value(keyB{}))
	assert.Len(t, tx.values, 3, "replaced in place, not appended")

	tx.br = make([]branchIO, 2)
	tx.SetBranchValue(1, keyA{}, "one")
	tx.SetBranchValue(5, keyA{}, "out of range")
	assert.Nil(t, tx.BranchValue(0, keyA{}))
	assert.Equal(t, "one", tx.BranchValue(1, keyA{}))
	assert.Nil(t, tx.BranchValue(5, keyA{}))
}
