//! Non-delivery reports: Exchange's NDR as Outlook shows it (Q183801's
//! layout, dates in the article's `M/D/YY h:mm AM` form on a virtual
//! calendar starting 1/5/98 7:31 PM) and a Unix MTA's delivery status
//! notification.

use natsim_nat::Instant;

/// Formats virtual time as the NDR's `M/D/YY h:mm AM` (epoch 1/5/98 7:31 PM).
pub fn ndr_time(t: Instant) -> String {
    let start_min = 19 * 60 + 31;
    let total_min = start_min + t.total_micros() / 60_000_000;
    let (mut day, min) = (5 + total_min / 1440, total_min % 1440);
    let mut month = 1;
    let dim = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    while day > dim[(month - 1) % 12] as u64 {
        day -= dim[(month - 1) % 12] as u64;
        month += 1;
    }
    let (h, m) = (min / 60, min % 60);
    let (h12, ampm) = match h {
        0 => (12, "AM"),
        1..=11 => (h, "AM"),
        12 => (12, "PM"),
        _ => (h - 12, "PM"),
    };
    format!("{month}/{day}/98 {h12}:{m:02} {ampm}")
}

/// `Monday, January 05, 1998 8:01 PM` for the NDR's Sent header.
pub fn ndr_long_time(t: Instant) -> String {
    let short = ndr_time(t);
    let (date, clock) = short.split_once(' ').unwrap_or((&short, ""));
    let mut it = date.split('/').map(|x| x.parse::<usize>().unwrap_or(1));
    let (month, day) = (it.next().unwrap_or(1), it.next().unwrap_or(1));
    let months = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let days = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let dim = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    // 1998-01-05 was a Monday.
    let ordinal: usize = dim[..month - 1].iter().sum::<usize>() + day;
    let weekday = days[(ordinal + 7 - 5) % 7];
    format!(
        "{weekday}, {} {day:02}, 1998 {clock}",
        months[(month - 1) % 12]
    )
}

/// The line Exchange prints above the diagnostic when delivery failed on
/// the wire (Q183801's NDR).
pub const COMMUNICATIONS_FAILURE: &str =
    "Unable to deliver the message due to a communications failure";

/// A complete NDR as Outlook shows it (headers, then [`ndr_text`]).
pub fn ndr_message(
    sender: &str,
    subject: &str,
    sent: Instant,
    recipient: &str,
    at: Instant,
    diagnostic: &str,
) -> String {
    ndr_message_with(
        sender,
        subject,
        sent,
        recipient,
        at,
        COMMUNICATIONS_FAILURE,
        diagnostic,
    )
}

/// [`ndr_message`] with another headline (e.g. "The recipient name is
/// not recognized").
pub fn ndr_message_with(
    sender: &str,
    subject: &str,
    sent: Instant,
    recipient: &str,
    at: Instant,
    headline: &str,
    diagnostic: &str,
) -> String {
    format!(
        "From: System Administrator\nSent: {}\nTo: '{sender}'\nSubject: Undeliverable: {subject}\n\n{}",
        ndr_long_time(at),
        ndr_text_with(subject, sent, recipient, at, headline, diagnostic)
    )
}

/// The body of an Exchange non-delivery report, laid out as Q183801 shows.
pub fn ndr_text(
    subject: &str,
    sent: Instant,
    recipient: &str,
    at: Instant,
    diagnostic: &str,
) -> String {
    ndr_text_with(
        subject,
        sent,
        recipient,
        at,
        COMMUNICATIONS_FAILURE,
        diagnostic,
    )
}

/// [`ndr_text`] with another headline.
pub fn ndr_text_with(
    subject: &str,
    sent: Instant,
    recipient: &str,
    at: Instant,
    headline: &str,
    diagnostic: &str,
) -> String {
    format!(
        "Your message did not reach some or all of the intended recipients.\n\n   Subject: {subject}\n   Sent: {}\n\nThe following recipient(s) could not be reached:\n\n  `{recipient}' on {}\n      {headline}\n      {diagnostic}\n",
        ndr_time(sent),
        ndr_time(at)
    )
}

/// The bounce a Unix MTA (sendmail) returns to the sender: the
/// human-readable part of an RFC 3464 delivery status notification.
pub fn dsn_text(
    reporting_mta: &str,
    sender: &str,
    subject: &str,
    recipient: &str,
    reason: &str,
) -> String {
    format!(
        "From: Mail Delivery Subsystem <MAILER-DAEMON@{reporting_mta}>\nTo: <{sender}>\nSubject: Returned mail: see transcript for details\n\nThe original message was received by {reporting_mta}.\n\n   ----- The following addresses had permanent fatal errors -----\n<{recipient}>\n    (reason: {reason})\n\n   ----- Original message subject: {subject} -----\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ims_config::{AddressSpace, ImsConfig};

    /// The NDR of KB Q183801, byte for byte (recipient and times are the
    /// article's).
    #[test]
    fn q183801_ndr_text_is_reproduced_byte_for_byte() {
        let mut ims = ImsConfig::new("Microsoft", "SITE", "SERVER", "domain.com");
        // The IMS is configured to send SMTPOUT mail (it has the address
        // space) but, before SP1, cannot.
        ims.address_spaces.push(AddressSpace {
            kind: "SMTPOUT".into(),
            address: "*".into(),
            cost: 1,
        });
        let diag = ims
            .outbound("[SMTPOUT:user@internal.domain.com]")
            .unwrap_err();
        let sent = Instant::ZERO;
        let at = Instant::from_secs(30 * 60);
        let text = ndr_text("Test Subject", sent, "user@domain.com", at, &diag);
        let kb = "Your message did not reach some or all of the intended recipients.\n\n   Subject: Test Subject\n   Sent: 1/5/98 7:31 PM\n\nThe following recipient(s) could not be reached:\n\n  `user@domain.com' on 1/5/98 8:01 PM\n      Unable to deliver the message due to a communications failure\n      MSEXCH:IMS:Microsoft:SITE:SERVER 0 (000D06B5) No proxy for\n      Recipient\n";
        assert_eq!(text, kb);
        let full = ndr_message(
            "user@domain.com",
            "Test Subject",
            sent,
            "user@domain.com",
            at,
            &diag,
        );
        assert!(full.starts_with("From: System Administrator\nSent: Monday, January 05, 1998 8:01 PM\nTo: 'user@domain.com'\nSubject: Undeliverable: Test Subject\n\n"));
    }

    #[test]
    fn ndr_time_rolls_over_days() {
        assert_eq!(ndr_time(Instant::ZERO), "1/5/98 7:31 PM");
        assert_eq!(ndr_time(Instant::from_secs(5 * 3600)), "1/6/98 12:31 AM");
        assert_eq!(ndr_time(Instant::from_secs(30 * 86400)), "2/4/98 7:31 PM");
    }
}
