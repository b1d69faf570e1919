//! A router's and a host's small value fields: `mss_clamp`, `tcp`.

use super::*;

/// `"pmtu"` (--clamp-mss-to-pmtu) or an MSS (--set-mss).
pub(super) fn mss_clamp(v: &S<toml::Value>, cx: &Ctx<'_>) -> Result<natsim_sim::MssClamp, Problem> {
    match v.get_ref() {
        toml::Value::String(s) if s == "pmtu" => Ok(natsim_sim::MssClamp::Pmtu),
        toml::Value::Integer(n) if (88..=65535).contains(n) => {
            Ok(natsim_sim::MssClamp::To(*n as u16))
        }
        _ => Err(cx.at(
            v.span(),
            "`mss_clamp` must be \"pmtu\" or an MSS of 88–65535",
            Some("e.g. mss_clamp = \"pmtu\" or mss_clamp = 1452"),
        )),
    }
}

pub(super) fn tcp_profile(t: &Option<S<String>>, cx: &Ctx<'_>) -> Result<TcpProfile, Problem> {
    match t {
        None => Ok(TcpProfile::windows()),
        Some(t) => TcpProfile::by_name(t.get_ref()).ok_or_else(|| {
            cx.at(
                t.span(),
                format!("unknown TCP profile `{}`", t.get_ref()),
                Some("`windows` or `linux`"),
            )
        }),
    }
}
