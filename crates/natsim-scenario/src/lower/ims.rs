//! A host's `[host.ims]` table as the Internet Mail Service's
//! [`ImsConfig`]: address spaces, routing, site addressing and proxies,
//! the retry schedule, its expiry and the hop limit, checked as a whole.

use crate::diag::{Ctx, Problem};
use crate::parse;
use crate::schema::{Ims, S};
use natsim_apps::mail::{AddressSpace, ImsConfig, RoutingEntry};

/// An IMS address space `TYPE ADDRESS COST`.
fn space(s: &S<String>, cx: &Ctx<'_>) -> Result<AddressSpace, Problem> {
    let parts: Vec<&str> = s.get_ref().split_whitespace().collect();
    match parts.as_slice() {
        [kind, address, cost] => Ok(AddressSpace {
            kind: kind.to_string(),
            address: address.to_string(),
            cost: cost.parse().map_err(|_| {
                cx.at(
                    s.span(),
                    format!("cost `{cost}` is not a number 1–100"),
                    None,
                )
            })?,
        }),
        _ => Err(cx.at(
            s.span(),
            format!("`{}` is not an address space", s.get_ref()),
            Some("`TYPE ADDRESS COST`, e.g. `SMTP * 1`"),
        )),
    }
}

pub fn ims_config(i: &Ims, cx: &Ctx<'_>) -> Result<ImsConfig, Problem> {
    let mut cfg = ImsConfig::new(&i.organization, &i.site, &i.server, i.site_domain.get_ref());
    cfg.service_pack = i.service_pack.as_ref().map_or(0, |v| *v.get_ref() as u8);
    cfg.address_spaces = i
        .address_spaces
        .iter()
        .map(|sp| space(sp, cx))
        .collect::<Result<_, _>>()?;
    cfg.smart_host = i
        .forward_all_to
        .as_ref()
        .map(|a| parse::addr(a, cx))
        .transpose()?;
    cfg.reroute = i.reroute;
    cfg.routing = i
        .routing
        .iter()
        .map(|r| RoutingEntry {
            domain: r.domain.get_ref().clone(),
            accept_as_inbound: r.accept_as_inbound,
        })
        .collect();
    cfg.mailboxes = i.mailboxes.clone();
    cfg.registry = i.registry.clone();
    cfg.proxy_addresses = i
        .proxy_addresses
        .iter()
        .map(|p| p.get_ref().clone())
        .collect();
    let dur = |d: &S<String>| {
        parse::duration(d, cx).and_then(|v| {
            if v.is_zero() {
                Err(cx.at(
                    d.span(),
                    format!("`{}` is not a positive duration", d.get_ref()),
                    Some("e.g. `15m`, `4h`; at most 30 days"),
                ))
            } else {
                Ok(v)
            }
        })
    };
    if let Some(d) = &i.retry_interval {
        cfg.retry_schedule = vec![dur(d)?];
    }
    if !i.retry_schedule.is_empty() {
        cfg.retry_schedule = i.retry_schedule.iter().map(dur).collect::<Result<_, _>>()?;
    }
    if let Some(d) = &i.expire_after {
        cfg.expire_after = dur(d)?;
    }
    if let Some(n) = &i.max_hops {
        if !(1..=1000).contains(n.get_ref()) {
            return Err(cx.at(
                n.span(),
                format!("max_hops {} is not in 1–1000", n.get_ref()),
                Some("RFC 5321 §6.3 suggests at least 100"),
            ));
        }
        cfg.max_hops = *n.get_ref() as usize;
    }
    if let Err(why) = cfg.validate() {
        // Point at the proxy the message names, else the hostname.
        let span = i
            .proxy_addresses
            .iter()
            .find(|p| why.contains(&format!("`{}`", p.get_ref())))
            .map_or(i.hostname.span(), |p| p.span());
        return Err(cx.at(
            span,
            why,
            Some("proxy_addresses = [\"alias@domain\"] with alias in `mailboxes`"),
        ));
    }
    Ok(cfg)
}
