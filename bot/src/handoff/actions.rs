//! What an owner's reply or button asks for a handoff: read from the text or the button's
//! data, before anything is done (`commands` acts on it, `relay` reads replies).

/// An owner's decision about a handoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerAction {
    /// "I'll answer": the lead's messages come to this owner only.
    Take,
    /// Done with: the lead goes back to the bot.
    Resolve,
    /// Back to the bot without it being resolved (the bot is better placed after all).
    Back,
}

impl OwnerAction {
    pub(super) fn close_reason(self) -> &'static str {
        match self {
            OwnerAction::Resolve => "resolved",
            OwnerAction::Back | OwnerAction::Take => "returned",
        }
    }
}

/// `/resolve` written as a reply to a lead's relayed message.
pub(super) fn reply_action(text: &str) -> Option<OwnerAction> {
    let first = text.split_whitespace().next()?.split('@').next()?;
    first
        .eq_ignore_ascii_case("/resolve")
        .then_some(OwnerAction::Resolve)
}

/// The action and handoff of an owner button's data, `handoff:<take|resolve|back>:<id>`.
pub(super) fn button_action(data: &str) -> Option<(OwnerAction, i64)> {
    let rest = data.strip_prefix("handoff:")?;
    let (action, id) = rest.split_once(':')?;
    let action = match action {
        "take" => OwnerAction::Take,
        "resolve" => OwnerAction::Resolve,
        "back" => OwnerAction::Back,
        _ => return None,
    };
    Some((action, id.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_buttons_and_replies_are_read() {
        assert_eq!(
            button_action("handoff:take:12"),
            Some((OwnerAction::Take, 12))
        );
        assert_eq!(
            button_action("handoff:back:3"),
            Some((OwnerAction::Back, 3))
        );
        assert_eq!(button_action("handoff:take:x"), None);
        assert_eq!(button_action("suggest:1"), None);
        assert_eq!(reply_action("/resolve"), Some(OwnerAction::Resolve));
        assert_eq!(
            reply_action("/Resolve@bot thanks"),
            Some(OwnerAction::Resolve)
        );
        assert_eq!(reply_action("resolve it"), None);
    }
}
