package real

import "time"

// SettleDue exposes settleDue to the external tests.
func (a *Arena) SettleDue(now time.Time) bool { return a.settleDue(now) }
