package history

import (
	"sync"

	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// notifier wakes whoever waits on an arena's logs when any of them grows.
// Waiters get a channel that is closed at the next change; the change is
// signalled from the transaction's commit hook, so a woken reader sees it.
type notifier struct {
	mu sync.Mutex
	ch map[realize.ArenaName]chan struct{}
}

// Changed returns a channel closed the next time a log of arena gains
// entries (its own or received).
func (l *Log) Changed(arena realize.ArenaName) <-chan struct{} {
	n := &l.notify
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = map[realize.ArenaName]chan struct{}{}
	}
	c, ok := n.ch[arena]
	if !ok {
		c = make(chan struct{})
		n.ch[arena] = c
	}
	return c
}

func (l *Log) signalOnCommit(tx *bolt.Tx, arena realize.ArenaName) {
	tx.OnCommit(func() {
		n := &l.notify
		n.mu.Lock()
		defer n.mu.Unlock()
		if c, ok := n.ch[arena]; ok {
			close(c)
			delete(n.ch, arena)
		}
	})
}
