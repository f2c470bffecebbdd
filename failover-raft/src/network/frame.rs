//! Length-prefixed, checksummed frames on a TCP stream.
//!
//! | size | field |
//! |---|---|
//! | 4 | magic `SRFT` |
//! | 4 | body length `n`, little endian (at most the endpoint's maximum) |
//! | 4 | CRC32 over the 4 length bytes and the body |
//! | n | body (JSON of a request or response) |
//!
//! A reader checks the magic and the maximum before allocating, and the checksum before
//! decoding; any mismatch is a [`FrameError`] after which the connection is dropped.

use std::fmt;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Magic bytes opening every frame.
pub const MAGIC: [u8; 4] = *b"SRFT";
/// Size of the frame header.
pub const HEADER_LEN: usize = 12;

/// Why a frame could not be read or written.
#[derive(Debug)]
pub enum FrameError {
    /// The peer closed the connection cleanly between frames.
    Closed,
    /// The socket failed, or closed inside a frame.
    Io(std::io::Error),
    /// The bytes are not a frame of this protocol.
    BadMagic([u8; 4]),
    /// The frame is larger than the endpoint accepts.
    TooLarge {
        /// The length the header claims.
        len: u64,
        /// The endpoint's maximum.
        max: u32,
    },
    /// The body does not match its checksum.
    Checksum {
        /// The CRC in the header.
        stored: u32,
        /// The CRC of the bytes received.
        computed: u32,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => write!(f, "connection closed"),
            Self::Io(e) => write!(f, "socket error: {e}"),
            Self::BadMagic(m) => {
                write!(f, "not a raft frame (magic {m:02x?}, expected {MAGIC:02x?})")
            }
            Self::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the maximum of {max}")
            }
            Self::Checksum { stored, computed } => write!(
                f,
                "frame checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

fn crc(len: &[u8; 4], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len);
    h.update(body);
    h.finalize()
}

/// Writes `body` as one frame (refusing one larger than `max`).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    body: &[u8],
    max: u32,
) -> Result<(), FrameError> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|n| *n <= max)
        .ok_or(FrameError::TooLarge { len: body.len() as u64, max })?;
    let len_bytes = len.to_le_bytes();
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(&MAGIC);
    header[4..8].copy_from_slice(&len_bytes);
    header[8..].copy_from_slice(&crc(&len_bytes, body).to_le_bytes());
    w.write_all(&header).await.map_err(FrameError::Io)?;
    w.write_all(body).await.map_err(FrameError::Io)?;
    w.flush().await.map_err(FrameError::Io)
}

/// Reads one frame's body (at most `max` bytes).
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: u32) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let rest = header.get_mut(got..).unwrap_or_default();
        let n = r.read(rest).await.map_err(FrameError::Io)?;
        if n == 0 {
            return Err(if got == 0 {
                FrameError::Closed
            } else {
                FrameError::Io(std::io::ErrorKind::UnexpectedEof.into())
            });
        }
        got += n;
        // Check the magic as soon as it is in, so garbage is refused early.
        if got >= 4 && header[..4] != MAGIC {
            let mut m = [0u8; 4];
            m.copy_from_slice(&header[..4]);
            return Err(FrameError::BadMagic(m));
        }
    }
    let mut len_bytes = [0u8; 4];
    len_bytes.copy_from_slice(&header[4..8]);
    let len = u32::from_le_bytes(len_bytes);
    if len > max {
        return Err(FrameError::TooLarge { len: u64::from(len), max });
    }
    let mut stored = [0u8; 4];
    stored.copy_from_slice(&header[8..]);
    let stored = u32::from_le_bytes(stored);
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).await.map_err(FrameError::Io)?;
    let computed = crc(&len_bytes, &body);
    if stored != computed {
        return Err(FrameError::Checksum { stored, computed });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f)
    }

    #[test]
    fn round_trips_and_refuses_damage() {
        block_on(async {
            let mut buf = Vec::new();
            write_frame(&mut buf, b"hello", 64).await.expect("writes");
            let back = read_frame(&mut buf.as_slice(), 64).await.expect("reads");
            assert_eq!(back, b"hello");

            for i in 0..buf.len() {
                let mut bad = buf.clone();
                bad[i] ^= 0x01;
                assert!(read_frame(&mut bad.as_slice(), 64).await.is_err(), "flip at {i}");
            }
            for cut in 1..buf.len() {
                let r = read_frame(&mut &buf[..cut], 64).await;
                assert!(
                    matches!(r, Err(FrameError::Io(_)) | Err(FrameError::BadMagic(_))),
                    "cut at {cut}"
                );
            }
            assert!(matches!(read_frame(&mut &buf[..0], 64).await, Err(FrameError::Closed)));
            assert!(matches!(
                read_frame(&mut buf.as_slice(), 4).await,
                Err(FrameError::TooLarge { .. })
            ));
            assert!(matches!(
                write_frame(&mut Vec::new(), b"hello", 4).await,
                Err(FrameError::TooLarge { .. })
            ));
        });
    }
}
