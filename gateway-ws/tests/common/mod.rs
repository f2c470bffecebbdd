//! What the gateway's loopback tests share: a server on an ephemeral port and a real
//! WebSocket client (tokio-tungstenite) with step timeouts.

#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use strata_gateway_ws::Gateway;
use strata_stream::{Heartbeat, Message};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const STEP: Duration = Duration::from_secs(20);

pub fn hb(n: u64) -> Message {
    Message::Heartbeat(Heartbeat { stream: 9, last_seq: n, ts_nanos: n })
}

pub struct Server {
    pub gateway: Gateway,
    pub addr: std::net::SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn serve(gateway: Gateway) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = gateway.router();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Server { gateway, addr, _stop: tx }
}

pub async fn connect(addr: std::net::SocketAddr, query: &str) -> Client {
    let (ws, _) = connect_async(format!("ws://{addr}/ws?{query}")).await.unwrap();
    ws
}

/// The next message, skipping pings.
pub async fn next(ws: &mut Client) -> Ws {
    loop {
        let m = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("no message within the step timeout")
            .expect("stream ended")
            .expect("receive failed");
        if !matches!(m, Ws::Ping(_) | Ws::Pong(_)) {
            return m;
        }
    }
}

pub async fn next_json(ws: &mut Client) -> Value {
    match next(ws).await {
        Ws::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("expected text, got {other:?}"),
    }
}
