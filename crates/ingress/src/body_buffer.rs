//! Reading a whole request body into one buffer, so that a burst of large bodies leaves no
//! high-water mark behind.
//!
//! In: a request body (already bounded by [`crate::request_limits`]) and its declared length.
//! Out: the body as [`Bytes`], or the reason it could not be read.
//!
//! Collecting hyper's chunks as they come (axum's `Bytes` extractor) leaves thousands of 8–16
//! KiB allocations behind a burst of large bodies, which no allocator returns to the operating
//! system once they are freed (measured: 1,000 sockets sending 1 MiB bodies left the process
//! about 30 MiB larger after they closed, with glibc malloc and with mimalloc alike). Here each
//! chunk is copied into one buffer of the declared length and dropped at once. A body of at
//! least [`MAPPED_FROM_BYTES`] goes into an anonymous memory map of its own, unmapped the moment
//! its last reference is dropped; smaller ones into a `Vec`. A body of unknown length (chunked)
//! starts in a `Vec` and moves to a map sized for the largest body allowed once it passes
//! [`MAPPED_FROM_BYTES`] (the map's untouched pages cost nothing), so it never grows by
//! doubling reallocations either.

use crate::body::MAX_BODY_BYTES;
use crate::error::ApiError;
use crate::request_limits::{cause, BodyLimitError};
use axum::body::{Body, Bytes};
use http_body::Body as _;
use memmap2::MmapMut;
use std::pin::Pin;

/// Bodies declaring at least this many bytes are read into a memory map of their own.
pub const MAPPED_FROM_BYTES: usize = 64 * 1024;

/// A body in a memory map, `len` bytes of it written.
struct MappedBody {
    map: MmapMut,
    len: usize,
}

impl AsRef<[u8]> for MappedBody {
    fn as_ref(&self) -> &[u8] {
        &self.map[..self.len]
    }
}

/// Where the bytes go while they arrive.
enum Buffer {
    Heap(Vec<u8>),
    Mapped(MappedBody),
}

impl Buffer {
    fn for_declared(declared: Option<usize>) -> Result<Buffer, ApiError> {
        match declared {
            Some(n) if n > MAX_BODY_BYTES => Err(BodyLimitError::TooLarge.into()),
            Some(n) if n >= MAPPED_FROM_BYTES => match MmapMut::map_anon(n) {
                Ok(map) => Ok(Buffer::Mapped(MappedBody { map, len: 0 })),
                Err(e) => Err(ApiError::Overloaded(format!("cannot map memory for a request body: {e}"))),
            },
            Some(n) => Ok(Buffer::Heap(Vec::with_capacity(n))),
            None => Ok(Buffer::Heap(Vec::new())),
        }
    }

    fn extend(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        if let Buffer::Heap(bytes) = self {
            let len = bytes.len() + chunk.len();
            if len > MAPPED_FROM_BYTES && len <= MAX_BODY_BYTES {
                // Only a body of unknown length gets here: a declared one is never longer than
                // declared, and a declared one this long was mapped from the start.
                let mut map = MmapMut::map_anon(MAX_BODY_BYTES)
                    .map_err(|e| ApiError::Overloaded(format!("cannot map memory for a request body: {e}")))?;
                map[..bytes.len()].copy_from_slice(bytes);
                *self = Buffer::Mapped(MappedBody { map, len: bytes.len() });
            }
        }
        match self {
            Buffer::Heap(bytes) if bytes.len() + chunk.len() <= MAX_BODY_BYTES => bytes.extend_from_slice(chunk),
            Buffer::Mapped(mapped) if mapped.len + chunk.len() <= mapped.map.len() => {
                mapped.map[mapped.len..mapped.len + chunk.len()].copy_from_slice(chunk);
                mapped.len += chunk.len();
            }
            // Longer than declared (hyper refuses that first) or than any body may be.
            _ => return Err(BodyLimitError::TooLarge.into()),
        }
        Ok(())
    }

    fn freeze(self) -> Bytes {
        match self {
            Buffer::Heap(bytes) => Bytes::from(bytes),
            Buffer::Mapped(mapped) => Bytes::from_owner(mapped),
        }
    }
}

/// Reads `body` whole. Errors: the limits' own answers (408, 413, 503), else 400.
pub async fn read_whole(mut body: Body, declared: Option<usize>) -> Result<Bytes, ApiError> {
    let mut buffer = Buffer::for_declared(declared)?;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| match cause(&e) {
            Some(limit) => ApiError::from(limit),
            None => ApiError::BadRequest { field: "body".into(), message: format!("the body could not be read: {e}") },
        })?;
        if let Some(chunk) = frame.data_ref() {
            buffer.extend(chunk)?;
        }
    }
    Ok(buffer.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(chunks: Vec<&'static [u8]>) -> Body {
        Body::from_stream(futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>)))
    }

    #[tokio::test]
    async fn small_and_unknown_length_bodies_are_read_onto_the_heap() {
        let read = read_whole(chunked(vec![b"{\"a\":", b"1}"]), Some(7)).await.unwrap();
        assert_eq!(&read[..], b"{\"a\":1}");
        let read = read_whole(chunked(vec![b"ab", b"cd"]), None).await.unwrap();
        assert_eq!(&read[..], b"abcd");
    }

    #[tokio::test]
    async fn large_bodies_are_read_into_a_map_of_their_own() {
        static HALF: [u8; MAPPED_FROM_BYTES] = [b'x'; MAPPED_FROM_BYTES];
        let read = read_whole(chunked(vec![&HALF, &HALF]), Some(2 * MAPPED_FROM_BYTES)).await.unwrap();
        assert_eq!(read.len(), 2 * MAPPED_FROM_BYTES);
        assert!(read.iter().all(|b| *b == b'x'));
    }

    #[tokio::test]
    async fn a_long_body_of_unknown_length_moves_to_a_map_and_stays_whole() {
        static HALF: [u8; MAPPED_FROM_BYTES] = [b'y'; MAPPED_FROM_BYTES];
        let read = read_whole(chunked(vec![b"ab", &HALF, &HALF]), None).await.unwrap();
        assert_eq!(read.len(), 2 * MAPPED_FROM_BYTES + 2);
        assert_eq!(&read[..3], b"aby");
        assert!(read[2..].iter().all(|b| *b == b'y'));
        let mut too_long: Vec<&'static [u8]> = vec![&HALF; MAX_BODY_BYTES / MAPPED_FROM_BYTES];
        too_long.push(b"!");
        let over = read_whole(chunked(too_long), None).await;
        assert!(matches!(over, Err(ApiError::PayloadTooLarge { .. })), "{over:?}");
    }

    #[tokio::test]
    async fn a_body_longer_than_declared_or_allowed_is_refused() {
        static HALF: [u8; MAPPED_FROM_BYTES] = [b'x'; MAPPED_FROM_BYTES];
        let over = read_whole(chunked(vec![&HALF, &HALF, b"!"]), Some(2 * MAPPED_FROM_BYTES)).await;
        assert!(matches!(over, Err(ApiError::PayloadTooLarge { .. })), "{over:?}");
        let declared = read_whole(chunked(vec![b"x"]), Some(MAX_BODY_BYTES + 1)).await;
        assert!(matches!(declared, Err(ApiError::PayloadTooLarge { .. })));
    }

    #[tokio::test]
    async fn a_failing_body_is_a_bad_request() {
        let failing = Body::from_stream(futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"{")),
            Err(std::io::Error::other("connection reset")),
        ]));
        let read = read_whole(failing, None).await;
        assert!(matches!(read, Err(ApiError::BadRequest { .. })), "{read:?}");
    }
}
