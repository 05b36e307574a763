package household

// Traffic returns the bytes sent to and received from the peer on this
// connection, as the QUIC transport counts them (packet overhead and
// retransmissions included, UDP and IP headers not). It stays valid after
// the connection closed: the daemon adds a closed connection's final
// figures to the peer's totals.
func (c *Conn) Traffic() (sent, received uint64) {
	st := c.qc.ConnectionStats()
	return st.BytesSent, st.BytesReceived
}
