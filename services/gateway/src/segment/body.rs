//! Request bodies as Segment's libraries send them: plain or gzip (`Content-Encoding: gzip`),
//! with the size limit applied to the decompressed bytes (a small gzip body can inflate to
//! gigabytes; reading stops one byte past the limit).

use std::io::Read;

use axum::http::{header, HeaderMap, StatusCode};
use crm_service::{Code, Problem};

/// The decompressed body, at most `limit` bytes; `too_large` names the limit in the 400.
pub fn decode(
    headers: &HeaderMap,
    body: &[u8],
    limit: usize,
    too_large: Code,
) -> Result<Vec<u8>, Problem> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let decoded = match encoding.as_deref() {
        None | Some("") | Some("identity") => body.to_vec(),
        Some("gzip") | Some("x-gzip") => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(body)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        Code::UnreadableBody,
                        format!("the body is not valid gzip ({e}); send it gzip-compressed whole, or without Content-Encoding"),
                    )
                })?;
            out
        }
        Some(other) => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::UnsupportedMediaType,
                format!("Content-Encoding '{other}' is not supported; send gzip or no encoding"),
            ))
        }
    };
    if decoded.len() > limit {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            too_large,
            format!("the body is over {limit} bytes once decompressed (Segment's limit); split it"),
        ));
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn status(p: Problem) -> StatusCode {
        axum::response::IntoResponse::into_response(p).status()
    }

    fn headers(encoding: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(e) = encoding {
            h.insert(header::CONTENT_ENCODING, e.parse().unwrap());
        }
        h
    }

    #[test]
    fn gzip_and_plain_bodies_decode_within_the_limit() {
        let text = br#"{"batch": []}"#;
        let out = decode(
            &headers(Some("gzip")),
            &gzip(text),
            100,
            Code::BatchTooLarge,
        )
        .unwrap();
        assert_eq!(out, text);
        let out = decode(&headers(None), text, 100, Code::BatchTooLarge).unwrap();
        assert_eq!(out, text);
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit_and_bad_encodings_are_named() {
        let bomb = gzip(&vec![b'a'; 10_000_000]);
        assert!(bomb.len() < 20_000);
        let e = decode(
            &headers(Some("gzip")),
            &bomb,
            500 * 1024,
            Code::BatchTooLarge,
        )
        .unwrap_err();
        assert_eq!(e.code(), "batch_too_large");
        assert_eq!(status(e), StatusCode::BAD_REQUEST);
        let e = decode(
            &headers(Some("gzip")),
            b"not gzip",
            100,
            Code::BatchTooLarge,
        )
        .unwrap_err();
        assert_eq!(e.code(), "unreadable_body");
        let e = decode(&headers(Some("br")), b"x", 100, Code::BatchTooLarge).unwrap_err();
        assert_eq!(status(e), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
