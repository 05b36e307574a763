package household

import "sync"

// events delivers OnConnect and OnDisconnect calls one at a time, in the
// order they happened, without making the transport wait for them.
type events struct {
	onUp, onDown func(*Conn)

	mu      sync.Mutex
	queue   []event
	started bool
	wake    chan struct{} // one pending signal is enough
	quit    chan struct{}
	done    chan struct{}
}

type event struct {
	c  *Conn
	up bool
}

func newEvents(onUp, onDown func(*Conn)) *events {
	return &events{onUp: onUp, onDown: onDown,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
}

func (e *events) push(c *Conn, up bool) {
	e.mu.Lock()
	e.queue = append(e.queue, event{c: c, up: up})
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *events) start() {
	e.mu.Lock()
	e.started = true
	e.mu.Unlock()
	go e.run()
}

func (e *events) run() {
	defer close(e.done)
	for {
		select {
		case <-e.wake:
			e.drain()
		case <-e.quit:
			e.drain()
			return
		}
	}
}

func (e *events) drain() {
	for {
		e.mu.Lock()
		if len(e.queue) == 0 {
			e.mu.Unlock()
			return
		}
		ev := e.queue[0]
		e.queue = e.queue[1:]
		e.mu.Unlock()
		switch {
		case ev.up && e.onUp != nil:
			e.onUp(ev.c)
		case !ev.up && e.onDown != nil:
			e.onDown(ev.c)
		}
	}
}

// stop delivers what is queued and ends the dispatcher.
func (e *events) stop() {
	e.mu.Lock()
	started := e.started
	e.mu.Unlock()
	close(e.quit)
	if started {
		<-e.done
	}
}
