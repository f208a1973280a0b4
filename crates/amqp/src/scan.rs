//! A structural pre-scan of AMQP-encoded bytes, run before decoding.
//!
//! The codec decodes nested lists, maps and arrays recursively with no depth limit, so a
//! small frame nesting thousands of lists would overflow the stack and abort the process. The
//! scan walks the encoding with its own depth bound (the recursion here is bounded by it) and
//! checks every size against the buffer, so that only well-formed, shallow input reaches the
//! decoder.

/// Deepest nesting of compound values and descriptors accepted.
pub(crate) const MAX_DEPTH: usize = 48;

/// Why bytes were refused.
pub(crate) type ScanError = String;

fn read_u8(buf: &[u8], pos: usize) -> Result<u8, ScanError> {
    buf.get(pos)
        .copied()
        .ok_or_else(|| format!("truncated encoding at byte {pos}"))
}

fn read_u32(buf: &[u8], pos: usize) -> Result<u32, ScanError> {
    let bytes = buf
        .get(pos..pos + 4)
        .ok_or_else(|| format!("truncated encoding at byte {pos}"))?;
    Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn advance(buf: &[u8], pos: usize, width: usize) -> Result<usize, ScanError> {
    let end = pos.checked_add(width).filter(|end| *end <= buf.len());
    end.ok_or_else(|| format!("a value at byte {pos} runs past the end"))
}

/// Checks one value starting at `pos`; returns the position after it.
pub(crate) fn value(buf: &[u8], pos: usize, depth: usize) -> Result<usize, ScanError> {
    if depth > MAX_DEPTH {
        return Err(format!("values nest deeper than {MAX_DEPTH} levels"));
    }
    let code = read_u8(buf, pos)?;
    if code == 0x00 {
        let after_descriptor = value(buf, pos + 1, depth + 1)?;
        return value(buf, after_descriptor, depth + 1);
    }
    body(code, buf, pos + 1, depth)
}

/// Checks the body of a value whose format code was already read.
fn body(code: u8, buf: &[u8], pos: usize, depth: usize) -> Result<usize, ScanError> {
    match code {
        0x40..=0x45 => Ok(pos),
        0x50..=0x56 => advance(buf, pos, 1),
        0x60 | 0x61 => advance(buf, pos, 2),
        0x70..=0x74 => advance(buf, pos, 4),
        0x80..=0x84 => advance(buf, pos, 8),
        0x94 | 0x98 => advance(buf, pos, 16),
        0xa0 | 0xa1 | 0xa3 => {
            let len = usize::from(read_u8(buf, pos)?);
            advance(buf, pos + 1, len)
        }
        0xb0 | 0xb1 | 0xb3 => {
            let len = read_u32(buf, pos)? as usize;
            advance(buf, pos + 4, len)
        }
        0xc0 | 0xc1 | 0xd0 | 0xd1 | 0xe0 | 0xf0 => compound(code, buf, pos, depth),
        other => Err(format!(
            "unknown format code {other:#04x} at byte {}",
            pos - 1
        )),
    }
}

fn compound(code: u8, buf: &[u8], pos: usize, depth: usize) -> Result<usize, ScanError> {
    let wide = matches!(code, 0xd0 | 0xd1 | 0xf0);
    let (size, count, items) = if wide {
        (
            read_u32(buf, pos)? as usize,
            read_u32(buf, pos + 4)? as usize,
            pos + 8,
        )
    } else {
        (
            usize::from(read_u8(buf, pos)?),
            usize::from(read_u8(buf, pos + 1)?),
            pos + 2,
        )
    };
    let size_width = if wide { 4 } else { 1 };
    // `size` counts the bytes after the size field, the count field included.
    let end = advance(buf, pos + size_width, size)?;
    if count > size {
        // Every element takes at least one byte, except array elements of a zero-width type.
        if !matches!(code, 0xe0 | 0xf0) {
            return Err(format!("{count} elements cannot fit in {size} bytes"));
        }
    }
    let mut cursor = items;
    if matches!(code, 0xe0 | 0xf0) {
        let mut element = read_u8(buf, cursor)?;
        cursor += 1;
        if element == 0x00 {
            cursor = value(buf, cursor, depth + 1)?;
            element = read_u8(buf, cursor)?;
            cursor += 1;
        }
        if matches!(element, 0xc0 | 0xc1 | 0xd0 | 0xd1 | 0xe0 | 0xf0) {
            for _ in 0..count {
                cursor = body(element, buf, cursor, depth + 1)?;
                if cursor > end {
                    return Err("array elements run past the array".to_owned());
                }
            }
        }
        return Ok(end);
    }
    for _ in 0..count {
        cursor = value(buf, cursor, depth + 1)?;
        if cursor > end {
            return Err("list or map elements run past their container".to_owned());
        }
    }
    Ok(end)
}

/// Checks a sequence of values filling `buf` (message sections).
pub(crate) fn all(buf: &[u8]) -> Result<(), ScanError> {
    let mut pos = 0;
    while pos < buf.len() {
        pos = value(buf, pos, 0)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_lists(levels: usize) -> Vec<u8> {
        // list8 with one element, nested, ending in null; sizes computed inside out.
        let mut inner = vec![0x40u8];
        for _ in 0..levels {
            let mut outer = vec![0xd0];
            outer.extend(((inner.len() + 4) as u32).to_be_bytes());
            outer.extend(1u32.to_be_bytes());
            outer.extend(inner);
            inner = outer;
        }
        inner
    }

    #[test]
    fn shallow_values_pass_and_report_their_end() {
        let bytes = nested_lists(3);
        assert_eq!(value(&bytes, 0, 0), Ok(bytes.len()));
    }

    #[test]
    fn deep_nesting_is_refused_without_recursing_into_it() {
        let bytes = nested_lists(10_000);
        let err = value(&bytes, 0, 0).unwrap_err();
        assert!(err.contains("deeper"), "{err}");
    }

    #[test]
    fn sizes_past_the_buffer_are_refused() {
        assert!(value(&[0xb0, 0, 0, 0, 9, 1], 0, 0).is_err());
        assert!(value(&[0xc0, 200, 1], 0, 0).is_err());
        assert!(value(&[0x99], 0, 0).is_err());
        assert!(all(&[0x40, 0x41, 0x53]).is_err());
    }

    #[test]
    fn real_performatives_pass() {
        let perf = fe2o3_amqp_types::performatives::Performative::End(
            fe2o3_amqp_types::performatives::End { error: None },
        );
        let bytes = serde_amqp::to_vec(&perf).unwrap();
        assert_eq!(value(&bytes, 0, 0), Ok(bytes.len()));
    }
}
