//! The transport conformance suite against the TCP transport on loopback: a server on
//! 127.0.0.1 (port 0) hosts the publishers, a client transport makes the subscribers.
//! It runs twice: with the publisher's direct socket writes (`direct_write`, the
//! default) and with every frame going through its connection's writer task.

use std::sync::Arc;

use strata_core::{Result, Transport};
use strata_harness::conformance::transport::{
    self, TransportCaps, TransportFactory, TransportPair,
};
use strata_transport_tcp::{TcpConfig, TcpTransport};

struct Tcp {
    direct_write: bool,
}

impl TransportFactory for Tcp {
    fn name(&self) -> String {
        if self.direct_write { "tcp".to_owned() } else { "tcp(writer_task)".to_owned() }
    }

    fn open(&self) -> Result<TransportPair> {
        let config = TcpConfig::default().with_direct_write(self.direct_write);
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
    transport::run(Arc::new(Tcp { direct_write: true }), caps()).assert_ok();
}

#[test]
fn tcp_without_direct_writes_passes_the_transport_suite() {
    transport::run(Arc::new(Tcp { direct_write: false }), caps()).assert_ok();
}
