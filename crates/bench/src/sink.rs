//! A loopback HTTP/1.1 server that reads every request body and throws it away: the HTTP
//! client's own limit, for the same requests the service gets.
//!
//! It is deliberately minimal (raw tokio, one task per connection, one reused 256 KiB read
//! buffer, keep-alive): what it measures is the client, the kernel's loopback and one read
//! per buffer — the least any server has to do. `POST` answers `201` with a small JSON body
//! and a `Location` (like asset creation); anything else answers `204` with `Upload-Offset`
//! (like a TUS PATCH). Bodies must carry a `Content-Length`.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The read buffer of one connection.
const READ_BUFFER: usize = 256 * 1024;

/// The largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// A running sink; stopped when dropped.
#[derive(Debug)]
pub struct Sink {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Sink {
    /// Binds a free loopback port and starts serving.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn start() -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Err(e) = serve(conn).await {
                        eprintln!("sink: connection failed: {e}");
                    }
                });
            }
        });
        Ok(Self { addr, accept })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Serves one keep-alive connection until the client closes it.
async fn serve(mut conn: TcpStream) -> io::Result<()> {
    conn.set_nodelay(true)?;
    let mut buf = vec![0_u8; READ_BUFFER];
    // Bytes of the next request already read: `buf[..filled]`.
    let mut filled = 0;
    loop {
        let head_len = loop {
            if let Some(end) = find(&buf[..filled], b"\r\n\r\n") {
                break end + 4;
            }
            if filled >= MAX_HEAD {
                return Err(io::Error::other("request head too large"));
            }
            let n = conn.read(&mut buf[filled..]).await?;
            if n == 0 {
                return Ok(());
            }
            filled += n;
        };
        let head = Head::parse(&buf[..head_len])?;

        // Body bytes that came with the head, then the rest, read and dropped. Bytes past the
        // body (a pipelined request) stay at the front of the buffer.
        let in_buffer = filled - head_len;
        let early = usize::try_from(head.content_length).map_or(in_buffer, |l| l.min(in_buffer));
        buf.copy_within(head_len + early..filled, 0);
        filled = in_buffer - early;
        let mut remaining = head.content_length - early as u64;
        while remaining > 0 {
            // `filled` is 0 here: the buffer held less than the body.
            let want = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
            let n = conn.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "body cut short",
                ));
            }
            remaining -= n as u64;
        }
        conn.write_all(head.response().as_bytes()).await?;
    }
}

/// What the sink needs of a request head.
#[derive(Debug)]
struct Head {
    post: bool,
    content_length: u64,
}

impl Head {
    fn parse(raw: &[u8]) -> io::Result<Self> {
        let text = std::str::from_utf8(raw).map_err(io::Error::other)?;
        let mut lines = text.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let mut content_length = 0;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().map_err(io::Error::other)?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(io::Error::other(format!(
                    "the sink needs a Content-Length, got Transfer-Encoding: {}",
                    value.trim()
                )));
            }
        }
        Ok(Self {
            post: request_line.starts_with("POST "),
            content_length,
        })
    }

    /// The answer: asset creation for a POST, a stored chunk otherwise.
    fn response(&self) -> String {
        if self.post {
            let body =
                r#"{"id":"ast_sink","state":"pending_upload","upload_url":"/v1/uploads/upl_sink"}"#;
            format!(
                "HTTP/1.1 201 Created\r\nLocation: /v1/uploads/upl_sink\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        } else {
            format!(
                "HTTP/1.1 204 No Content\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: {}\r\n\r\n",
                self.content_length
            )
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
