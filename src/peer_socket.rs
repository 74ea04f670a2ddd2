//! Closing a connection whose peer stopped reading (the live stream), or that should end now
//! (the simulator, after a closing handshake, as Upbit does).
//!
//! actix-http only polls a response body while its write buffer has room, and has no write
//! timeout: when a consumer stops reading, its connection waits forever and nothing the body
//! stream does (ending, failing) is ever seen. So each connection's socket is remembered at
//! accept time ([`remember_socket`], `HttpServer::on_connect`), and a stream that was ended but
//! did not finish within a grace period is shut down ([`PeerSocket::shut_down`]): the
//! dispatcher's next write fails and it drops the connection.
//!
//! The handle is a duplicate of the connection's descriptor (one more open descriptor per HTTP
//! connection, closed with it); `shutdown(2)` acts on the socket, whichever descriptor is used.
//!
//! Stream connections also get a fixed send buffer ([`SEND_BUFFER`]) instead of the kernel's
//! autotuned one (up to 4 MiB on Linux): that bounds the kernel memory a stalled consumer holds,
//! and lets the service see a consumer fall behind in its own queue, where it is measured.

use std::any::Any;
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

use actix_web::dev::Extensions;
use actix_web::HttpRequest;
use socket2::SockRef;

/// Send buffer of a stream connection, bytes (Linux doubles it for bookkeeping). At 100 ms
/// round trip that still carries over 2 MB/s, far above a full Upbit feed.
pub const SEND_BUFFER: usize = 128 << 10;

/// The socket of the connection a request arrived on.
#[derive(Clone)]
pub struct PeerSocket(Rc<OwnedFd>);

/// For `HttpServer::on_connect`: stores the connection's socket in its connection data.
pub fn remember_socket(connection: &dyn Any, data: &mut Extensions) {
    let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    match tcp.as_fd().try_clone_to_owned() {
        Ok(fd) => {
            data.insert(PeerSocket(Rc::new(fd)));
        }
        Err(error) => log::debug!("cannot keep a handle on a connection's socket: {error}"),
    }
}

impl PeerSocket {
    /// The socket of the request's connection, if remembered.
    pub fn of(request: &HttpRequest) -> Option<Self> {
        request.conn_data::<Self>().cloned()
    }

    /// Fixes the send buffer at [`SEND_BUFFER`] (from the next write on).
    pub fn bound_send_buffer(&self) {
        if let Err(error) = SockRef::from(&*self.0).set_send_buffer_size(SEND_BUFFER) {
            log::debug!("cannot set a stream connection's send buffer: {error}");
        }
    }

    /// Shuts the socket down in both directions: pending writes fail, the peer sees the end.
    pub fn shut_down(&self) {
        if let Err(error) = SockRef::from(&*self.0).shutdown(Shutdown::Both) {
            log::debug!("socket shutdown failed: {error}");
        }
    }
}
