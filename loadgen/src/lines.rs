//! Reading what another program writes (a server, a launcher, an agent): bytes, not text,
//! decoded lossily, with every line and every kept tail bounded, and always read to the end so
//! that the writer never blocks on a full pipe.

use std::io::{self, BufRead, BufReader, Read};

/// The longest line kept of what another program writes; the rest of a longer one is read
/// and dropped.
pub const MAX_LINE: usize = 64 << 10;

/// Reads the next line of `input` without its newline, at most `cap` bytes of it (the rest of
/// a longer line is read and dropped); `None` at the end of the input.
pub fn read_capped(input: &mut impl BufRead, cap: usize) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let mut read_any = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(read_any.then_some(line));
        }
        read_any = true;
        let newline = buf.iter().position(|&b| b == b'\n');
        let chunk = &buf[..newline.unwrap_or(buf.len())];
        let room = cap.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = newline.map_or(buf.len(), |i| i + 1);
        input.consume(used);
        if newline.is_some() {
            return Ok(Some(line));
        }
    }
}

/// Hands every line of `input` to `each`, decoded lossily and cut at `cap` bytes, until the
/// input ends or fails to be read.
pub fn each_line(input: impl Read, cap: usize, mut each: impl FnMut(String)) {
    let mut input = BufReader::new(input);
    while let Ok(Some(line)) = read_capped(&mut input, cap) {
        each(String::from_utf8_lossy(&line).into_owned());
    }
}

/// Reads `input` to its end and returns its last `keep` bytes, decoded lossily: what a
/// process said last, in bounded memory however much it said.
pub fn tail(mut input: impl Read, keep: usize) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = [0; 8192];
    loop {
        match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * keep.max(buf.len()) {
                    kept.drain(..kept.len() - keep);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let from = kept.len().saturating_sub(keep);
    String::from_utf8_lossy(&kept[from..]).into_owned()
}

/// A file's text, decoded lossily (empty when it cannot be read): a log another program wrote.
pub fn read_lossy(path: &std::path::Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_as_bytes_cut_at_their_cap_and_read_past_bad_utf8() {
        let text = b"first \xff\xfe line\nsecond line is long\nthird";
        let mut input = &text[..];
        let first = read_capped(&mut input, 100).unwrap().unwrap();
        assert_eq!(first, b"first \xff\xfe line");
        let second = read_capped(&mut input, 6).unwrap().unwrap();
        assert_eq!(second, b"second", "cut at its cap, the rest dropped");
        assert_eq!(read_capped(&mut input, 100).unwrap().unwrap(), b"third");
        assert_eq!(read_capped(&mut input, 100).unwrap(), None);
        let mut lines = Vec::new();
        each_line(&text[..], MAX_LINE, |l| lines.push(l));
        assert_eq!(
            lines,
            [
                "first \u{fffd}\u{fffd} line",
                "second line is long",
                "third"
            ]
        );
    }

    #[test]
    fn a_tail_keeps_the_last_bytes_of_a_long_stream() {
        let long: Vec<u8> = (0..100_000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let said = tail(&long[..], 20);
        assert_eq!(said.len(), 20);
        assert!(said.ends_with("line 99999\n"), "{said:?}");
        assert_eq!(tail(&b"a \xff b"[..], 100), "a \u{fffd} b");
    }
}
