//! Frames on the P2P wire: `magic (4 bytes) | length (u32 BE) | payload`.
//!
//! Pure parsing, no I/O. The magic makes garbage (an HTTP request, a port scanner)
//! fail on its first bytes instead of being read as a length. The length is checked
//! against a hard maximum *before* any buffer grows, so a hostile prefix cannot make
//! the node allocate; the maximum is small until the handshake completes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

pub const MAGIC: [u8; 4] = *b"TNP1";
pub const HEADER_LEN: usize = 8;
/// Largest frame before the handshake completes: VERSION and VERACK are far smaller.
pub const HANDSHAKE_MAX_FRAME: usize = 4 * 1024;
/// Largest frame from an authenticated peer.
pub const MAX_FRAME: usize = 2 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("bad magic bytes {found:02x?} (not a testnet P2P peer)")]
    BadMagic { found: Vec<u8> },
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("connection closed in the middle of a frame ({have} of {need} bytes)")]
    Truncated { have: usize, need: usize },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Length-delimited framing with a magic and an adjustable hard maximum.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_len: usize,
}

impl FrameCodec {
    pub fn new(max_len: usize) -> Self {
        FrameCodec { max_len }
    }

    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len;
    }

    /// Encodes one frame into a fresh buffer (used where no codec is at hand).
    pub fn encode_frame(payload: &[u8]) -> Bytes {
        let mut buf = BytesMut::with_capacity(HEADER_LEN + payload.len());
        put_frame(&mut buf, payload);
        buf.freeze()
    }
}

fn put_frame(dst: &mut BytesMut, payload: &[u8]) {
    dst.reserve(HEADER_LEN + payload.len());
    dst.put_slice(&MAGIC);
    dst.put_u32(payload.len() as u32);
    dst.put_slice(payload);
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        let have = src.len().min(MAGIC.len());
        if src[..have] != MAGIC[..have] {
            return Err(FrameError::BadMagic {
                found: src[..have].to_vec(),
            });
        }
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[4], src[5], src[6], src[7]]) as usize;
        if len > self.max_len {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_len,
            });
        }
        if src.len() < HEADER_LEN + len {
            src.reserve(HEADER_LEN + len - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        Ok(Some(src.split_to(len)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => {
                let need = if src.len() >= HEADER_LEN {
                    HEADER_LEN + u32::from_be_bytes([src[4], src[5], src[6], src[7]]) as usize
                } else {
                    HEADER_LEN
                };
                Err(FrameError::Truncated {
                    have: src.len(),
                    need,
                })
            }
        }
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, payload: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        if payload.len() > self.max_len {
            return Err(FrameError::TooLarge {
                len: payload.len(),
                max: self.max_len,
            });
        }
        put_frame(dst, &payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A catch-up reply at its byte budget, framed, stays under the limit.
    const _: () = assert!(crate::finality::CATCHUP_REPLY_BYTES + 4096 <= MAX_FRAME);

    fn decode_all(codec: &mut FrameCodec, bytes: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(f) = codec.decode_eof(&mut buf)? {
            out.push(f.to_vec());
        }
        Ok(out)
    }

    #[test]
    fn garbage_fails_on_the_first_bytes() {
        let mut codec = FrameCodec::new(MAX_FRAME);
        let mut buf = BytesMut::from(&b"GE"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::BadMagic { .. })
        ));
    }

    #[test]
    fn oversize_length_is_refused_before_allocating() {
        let mut codec = FrameCodec::new(HANDSHAKE_MAX_FRAME);
        let mut buf = BytesMut::new();
        buf.put_slice(&MAGIC);
        buf.put_u32(u32::MAX);
        let cap_before = buf.capacity();
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLarge { len, .. }) if len == u32::MAX as usize
        ));
        assert_eq!(buf.capacity(), cap_before);
    }

    #[test]
    fn truncated_frame_is_reported_at_eof() {
        let mut codec = FrameCodec::new(MAX_FRAME);
        let full = FrameCodec::encode_frame(b"hello world");
        let err = decode_all(&mut codec, &full[..full.len() - 3]).unwrap_err();
        assert!(
            matches!(err, FrameError::Truncated { have: 16, need: 19 }),
            "{err:?}"
        );
        let err = decode_all(&mut codec, &full[..5]).unwrap_err();
        assert!(matches!(err, FrameError::Truncated { .. }), "{err:?}");
    }

    #[test]
    fn encoder_refuses_frames_over_the_limit() {
        let mut codec = FrameCodec::new(4);
        let mut buf = BytesMut::new();
        assert!(codec
            .encode(Bytes::from_static(b"12345"), &mut buf)
            .is_err());
        assert!(buf.is_empty());
    }

    proptest! {
        #[test]
        fn frames_round_trip_however_the_bytes_are_split(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            split in 1usize..64,
        ) {
            let mut wire = BytesMut::new();
            let mut codec = FrameCodec::new(MAX_FRAME);
            for p in &payloads {
                codec.encode(Bytes::from(p.clone()), &mut wire).unwrap();
            }
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for chunk in wire.chunks(split) {
                buf.extend_from_slice(chunk);
                while let Some(f) = codec.decode(&mut buf).unwrap() {
                    got.push(f.to_vec());
                }
            }
            prop_assert_eq!(got, payloads);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut codec = FrameCodec::new(HANDSHAKE_MAX_FRAME);
            let _ = decode_all(&mut codec, &bytes);
        }
    }
}
