//! The transport conformance suite against the TCP transport on loopback: a server on
//! 127.0.0.1 (port 0) hosts the publishers, a client transport makes the subscribers.
//! It runs three times: with the defaults (the publisher writes to the socket itself,
//! `direct_write`; the subscriber's thread reads it itself, `inline_read`), with every
//! frame going through its connection's writer task, and with the transport's runtime
//! reading each subscriber's socket in the background.

use std::sync::Arc;

use strata_core::{Result, Transport};
use strata_harness::conformance::transport::{
    self, TransportCaps, TransportFactory, TransportPair,
};
use strata_transport_tcp::{TcpConfig, TcpTransport};

struct Tcp {
    direct_write: bool,
    inline_read: bool,
}

impl TransportFactory for Tcp {
    fn name(&self) -> String {
        match (self.direct_write, self.inline_read) {
            (true, true) => "tcp".to_owned(),
            (false, true) => "tcp(writer_task)".to_owned(),
            (true, false) => "tcp(runtime_read)".to_owned(),
            (false, false) => "tcp(writer_task, runtime_read)".to_owned(),
        }
    }

    fn open(&self) -> Result<TransportPair> {
        let config = TcpConfig::default()
            .with_direct_write(self.direct_write)
            .with_inline_read(self.inline_read);
        let server = TcpTransport::server_with("127.0.0.1:0", config.clone())?;
        let client = TcpTransport::client_with(server.remote_addr(), config)?;
        let publisher_side: Box<dyn Transport> = Box::new(server);
        Ok(TransportPair { publisher_side, subscriber_side: Box::new(client) })
    }
}

/// Loopback buffers several MB in the kernel: the drop-oldest check floods 64 MB so
/// frames really are dropped.
fn caps() -> TransportCaps {
    TransportCaps::default().with_flood(4096, 16 * 1024)
}

#[test]
fn tcp_passes_the_transport_suite() {
    transport::run(Arc::new(Tcp { direct_write: true, inline_read: true }), caps()).assert_ok();
}

#[test]
fn tcp_without_direct_writes_passes_the_transport_suite() {
    transport::run(Arc::new(Tcp { direct_write: false, inline_read: true }), caps()).assert_ok();
}

#[test]
fn tcp_with_runtime_reads_passes_the_transport_suite() {
    transport::run(Arc::new(Tcp { direct_write: true, inline_read: false }), caps()).assert_ok();
}
