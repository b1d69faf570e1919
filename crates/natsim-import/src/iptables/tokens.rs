//! An iptables-save rule line split into words, with quotes as
//! iptables-save writes them.

/// A word of a rule line and its 1-based column.
pub(super) struct Tok<'a> {
    pub s: String,
    pub col: usize,
    _src: &'a str,
}

pub(super) fn tokens(line: &str) -> Result<Vec<Tok<'_>>, usize> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let col = line[..i].chars().count() + 1;
        let mut s = String::new();
        if b[i] == b'"' {
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err(col),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if b.get(i + 1).is_some() => {
                        let c = line[i + 1..].chars().next().unwrap_or(' ');
                        s.push(c);
                        i += 1 + c.len_utf8();
                    }
                    Some(_) => {
                        let c = line[i..].chars().next().unwrap_or(' ');
                        s.push(c);
                        i += c.len_utf8();
                    }
                }
            }
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                let c = line[i..].chars().next().unwrap_or(' ');
                s.push(c);
                i += c.len_utf8();
            }
        }
        out.push(Tok { s, col, _src: line });
    }
    Ok(out)
}
