//! The bot's routing table: a stored update, parsed into teloxide's types, becomes one
//! [`Route`]; `conversation::Pipeline::handle_update` runs it.
//!
//! The inbox keeps every update as the JSON Telegram sent; parsing happens here, when a worker
//! takes it. Adding a route: a variant of [`Route`], an arm in [`route`] (and the update kind
//! in `botfleet_api::contract::ALLOWED_UPDATES` if it is a new kind), an arm in the pipeline.

use botfleet_api::contract::ALLOWED_UPDATES;
use serde::Deserialize;
use serde_json::Value;
use teloxide::types::{
    CallbackQuery, ChatMemberUpdated, MaybeInaccessibleMessage, Message, MessageKind, Update,
    UpdateKind, User,
};

use crate::leads::Inbound;

/// What the bot does with one update.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// A text message: a command or a question for the LLM (`conversation/`).
    Text(Inbound),
    /// A text message that replies to one of the bot's messages: an owner answering a lead
    /// through the bot when that message was a relayed one (`handoff/`), else like `Text`.
    Reply {
        inbound: Inbound,
        to_message_id: i64,
    },
    /// A message the bot cannot read yet (photo, voice, sticker…): it says it reads text only.
    NotText { chat_id: i64 },
    /// A file sent as a document: read and kept as the lead's active document (`knowledge/`).
    Document(Upload),
    /// A button of one of the bot's inline keyboards was pressed.
    Button(ButtonPress),
    /// The user blocked the bot (no more follow-ups) or unblocked it.
    Membership { chat_id: i64, blocked: bool },
    /// Acknowledged and nothing else (the inbox row is done, the chat's next update runs).
    Ignore(&'static str),
}

/// Where an update came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chat {
    pub id: i64,
    /// `chat.type` is `private` (a user's own chat with the bot).
    pub private: bool,
}

impl Chat {
    fn of(chat: &teloxide::types::Chat) -> Self {
        Self {
            id: chat.id.0,
            private: chat.is_private(),
        }
    }
}

/// A pressed inline-keyboard button.
#[derive(Debug, Clone, PartialEq)]
pub struct ButtonPress {
    /// Answered with `answerCallbackQuery` so the user's client stops its spinner.
    pub query_id: String,
    pub chat: Chat,
    pub user: Sender,
    /// The button's `callback_data`.
    pub data: String,
    /// The label of the pressed button, read from the message the keyboard is attached to
    /// (absent when Telegram no longer includes that message).
    pub label: Option<String>,
}

/// A document a lead sent, as the update describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub update_id: i64,
    pub chat: Chat,
    pub user: Sender,
    pub file_id: String,
    pub file_name: String,
    pub mime_type: Option<String>,
    /// As Telegram reports it (may be absent).
    pub file_size: Option<u64>,
}

/// Who wrote or pressed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sender {
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub first_name: Option<String>,
}

impl Sender {
    fn of(user: Option<&User>) -> Self {
        match user {
            Some(user) => Self {
                user_id: i64::try_from(user.id.0).ok(),
                username: user.username.clone(),
                first_name: Some(user.first_name.clone()),
            },
            None => Self::default(),
        }
    }

    pub fn inbound(self, update_id: i64, chat: &Chat, text: String) -> Inbound {
        Inbound {
            update_id,
            chat_id: chat.id,
            private_chat: chat.private,
            user_id: self.user_id,
            username: self.username,
            first_name: self.first_name,
            text,
        }
    }
}

/// A stored payload the types cannot read: kept in the inbox with this error, never retried.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(String);

/// Parses a stored update and routes it.
pub fn route_payload(update_id: i64, payload: &str) -> Result<Route, Unreadable> {
    let value: Value = serde_json::from_str(payload)
        .map_err(|e| Unreadable(format!("the stored update is not JSON: {e}")))?;
    let update = Update::deserialize(&value)
        .map_err(|e| Unreadable(format!("the stored update is not a Telegram update: {e}")))?;
    route(update_id, &update, &value)
}

/// The routing table.
pub fn route(update_id: i64, update: &Update, raw: &Value) -> Result<Route, Unreadable> {
    Ok(match &update.kind {
        UpdateKind::Message(message) => message_route(update_id, message),
        UpdateKind::CallbackQuery(query) => button_route(query),
        UpdateKind::MyChatMember(member) => membership_route(member),
        // Telegram tells the bot about edits; the answer to the original stands.
        UpdateKind::EditedMessage(_) => Route::Ignore("edited message"),
        // teloxide could not read it: a kind newer than its types, or a payload of a kind we
        // handle that does not have the shape the types expect (kept, with the reason).
        UpdateKind::Error(_) => return unreadable_kind(raw),
        _ => Route::Ignore("update kind not handled"),
    })
}

fn message_route(update_id: i64, message: &Message) -> Route {
    let chat = Chat::of(&message.chat);
    let chat_id = chat.id;
    let MessageKind::Common(_) = &message.kind else {
        // Service messages: members joined or left, a title changed, a message was pinned…
        return Route::Ignore("service message");
    };
    if message.from.as_ref().is_some_and(|from| from.is_bot) {
        return Route::Ignore("message from a bot");
    }
    if let Some(document) = message.document() {
        return Route::Document(Upload {
            update_id,
            chat,
            user: Sender::of(message.from.as_ref()),
            file_id: document.file.id.0.clone(),
            file_name: document
                .file_name
                .clone()
                .unwrap_or_else(|| "document".to_owned()),
            mime_type: document
                .mime_type
                .as_ref()
                .map(|m| m.essence_str().to_owned()),
            file_size: Some(u64::from(document.file.size)).filter(|size| *size > 0),
        });
    }
    match message.text() {
        Some(text) => {
            let inbound = Sender::of(message.from.as_ref()).inbound(update_id, &chat, text.into());
            match message.reply_to_message() {
                Some(to) if to.from.as_ref().is_some_and(|from| from.is_bot) => Route::Reply {
                    inbound,
                    to_message_id: i64::from(to.id.0),
                },
                _ => Route::Text(inbound),
            }
        }
        // Photos, voice, stickers.
        None => Route::NotText { chat_id },
    }
}

/// The message of a stored message update, with everything teloxide reads (entities, photo,
/// document): for the features that need more than its text (a broadcast's content).
pub fn message_of(payload: &str) -> Option<Message> {
    match serde_json::from_str::<Update>(payload).ok()?.kind {
        UpdateKind::Message(message) => Some(message),
        _ => None,
    }
}

fn button_route(query: &CallbackQuery) -> Route {
    let keyboard_message = match &query.message {
        Some(MaybeInaccessibleMessage::Regular(message)) => Some(message.as_ref()),
        _ => None,
    };
    let chat = match &query.message {
        Some(message) => Chat::of(message.chat()),
        // A button under an inline-mode message has no chat: the presser's private chat.
        None => match i64::try_from(query.from.id.0) {
            Ok(id) => Chat { id, private: true },
            Err(_) => return Route::Ignore("button press without a chat"),
        },
    };
    let Some(data) = query.data.clone() else {
        return Route::Ignore("button press without data (a game)");
    };
    let label = keyboard_message
        .and_then(Message::reply_markup)
        .and_then(|markup| {
            markup
                .inline_keyboard
                .iter()
                .flatten()
                .find_map(|button| match &button.kind {
                    teloxide::types::InlineKeyboardButtonKind::CallbackData(d) if *d == data => {
                        Some(button.text.clone())
                    }
                    _ => None,
                })
        });
    Route::Button(ButtonPress {
        query_id: query.id.0.clone(),
        chat,
        user: Sender::of(Some(&query.from)),
        data,
        label,
    })
}

fn membership_route(member: &ChatMemberUpdated) -> Route {
    let new = &member.new_chat_member;
    Route::Membership {
        chat_id: member.chat.id.0,
        blocked: new.kind.is_banned() || new.kind.is_left(),
    }
}

fn unreadable_kind(raw: &Value) -> Result<Route, Unreadable> {
    let Some(kind) = kind_of(raw).filter(|k| ALLOWED_UPDATES.contains(k)) else {
        return Ok(Route::Ignore("update kind not handled"));
    };
    let detail = match kind {
        "message" => serde_json::from_value::<Message>(raw[kind].clone()).err(),
        "callback_query" => serde_json::from_value::<CallbackQuery>(raw[kind].clone()).err(),
        "my_chat_member" => serde_json::from_value::<ChatMemberUpdated>(raw[kind].clone()).err(),
        _ => None,
    };
    Err(Unreadable(match detail {
        Some(e) => format!("a {kind} update the Telegram types cannot read: {e}"),
        None => format!("a {kind} update the Telegram types cannot read"),
    }))
}

/// What the intake (webhook, polling) needs to know of an update before storing it: its id,
/// chat and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateHeader {
    pub update_id: i64,
    pub chat_id: Option<i64>,
    pub kind: &'static str,
}

/// Kinds Telegram may send besides [`ALLOWED_UPDATES`] (a registration made before the list
/// changed): named in the intake's `kind` label, then acknowledged by [`route`]. With
/// `ALLOWED_UPDATES` this is the one table of update kinds.
const OTHER_KINDS: [&str; 5] = [
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "inline_query",
    "chat_member",
];

/// The update's kind, as its field is named; `None` for a kind in neither table.
fn kind_of(value: &Value) -> Option<&'static str> {
    ALLOWED_UPDATES
        .iter()
        .chain(OTHER_KINDS.iter())
        .copied()
        .find(|k| value.get(*k).is_some())
}

/// Reads the header fields of an update; `None` when the body is not a Telegram update.
pub fn parse_update(body: &[u8]) -> Option<UpdateHeader> {
    let value: Value = serde_json::from_slice(body).ok()?;
    update_header(&value)
}

pub fn update_header(value: &Value) -> Option<UpdateHeader> {
    let update_id = value.get("update_id")?.as_i64()?;
    let kind = kind_of(value).unwrap_or("other");
    let chat_id = value.get(kind).and_then(|inner| {
        inner["chat"]["id"]
            .as_i64()
            .or_else(|| inner["message"]["chat"]["id"].as_i64())
            .or_else(|| inner["from"]["id"].as_i64())
    });
    Some(UpdateHeader {
        update_id,
        chat_id,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(id: i64) -> Value {
        json!({"id": id, "is_bot": false, "first_name": "Lead", "username": "lead"})
    }

    fn text_message(chat_id: i64, text: &str) -> Value {
        json!({"message_id": 5, "date": 1_700_000_000,
               "chat": {"id": chat_id, "type": "private", "first_name": "Lead"},
               "from": user(chat_id), "text": text})
    }

    fn routed(update: Value) -> Result<Route, Unreadable> {
        route_payload(update["update_id"].as_i64().unwrap(), &update.to_string())
    }

    #[test]
    fn a_text_message_goes_to_the_conversation() {
        let route = routed(json!({"update_id": 1, "message": text_message(42, "hi")})).unwrap();
        let Route::Text(inbound) = route else {
            panic!("{route:?}")
        };
        assert_eq!(
            (inbound.update_id, inbound.chat_id, inbound.user_id),
            (1, 42, Some(42))
        );
        assert_eq!(inbound.text, "hi");
        assert_eq!(inbound.username.as_deref(), Some("lead"));
        assert!(inbound.private_chat);
    }

    #[test]
    fn a_group_message_is_not_from_a_private_chat() {
        let mut message = text_message(-100, "hi all");
        message["chat"] = json!({"id": -100, "type": "supergroup", "title": "Leads"});
        message["from"] = user(7);
        let Route::Text(inbound) = routed(json!({"update_id": 11, "message": message})).unwrap()
        else {
            panic!()
        };
        assert_eq!((inbound.chat_id, inbound.private_chat), (-100, false));
    }

    #[test]
    fn a_reply_to_the_bot_names_the_message_replied_to() {
        let mut message = text_message(900, "We can do 10% off.");
        message["reply_to_message"] = json!({"message_id": 33, "date": 1_700_000_000,
            "chat": {"id": 900, "type": "private", "first_name": "Owner"},
            "from": {"id": 1, "is_bot": true, "first_name": "Bot"}, "text": "lead: discount?"});
        let Route::Reply {
            inbound,
            to_message_id,
        } = routed(json!({"update_id": 11, "message": message})).unwrap()
        else {
            panic!()
        };
        assert_eq!((inbound.chat_id, to_message_id), (900, 33));
        assert_eq!(inbound.text, "We can do 10% off.");
        // A reply to someone who is not a bot is plain text.
        let mut message = text_message(900, "hi");
        message["reply_to_message"] = text_message(900, "earlier");
        assert!(matches!(
            routed(json!({"update_id": 12, "message": message})).unwrap(),
            Route::Text(_)
        ));
    }

    #[test]
    fn a_photo_is_not_text_and_a_service_message_is_ignored() {
        let mut photo = text_message(42, "");
        photo.as_object_mut().unwrap().remove("text");
        photo["photo"] = json!([{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}]);
        assert_eq!(
            routed(json!({"update_id": 2, "message": photo})).unwrap(),
            Route::NotText { chat_id: 42 }
        );
        let mut joined = text_message(-100, "");
        joined.as_object_mut().unwrap().remove("text");
        joined["chat"] = json!({"id": -100, "type": "group", "title": "Group"});
        joined["from"] = user(7);
        joined["new_chat_members"] = json!([user(7)]);
        assert_eq!(
            routed(json!({"update_id": 3, "message": joined})).unwrap(),
            Route::Ignore("service message")
        );
    }

    #[test]
    fn a_document_is_routed_with_its_file() {
        let mut message = text_message(42, "");
        message.as_object_mut().unwrap().remove("text");
        message["document"] = json!({"file_id": "BQAD", "file_unique_id": "u1",
            "file_name": "offer.pdf", "mime_type": "application/pdf", "file_size": 2048});
        let Route::Document(upload) = routed(json!({"update_id": 11, "message": message})).unwrap()
        else {
            panic!()
        };
        assert_eq!((upload.update_id, upload.chat.id), (11, 42));
        assert_eq!(upload.file_id, "BQAD");
        assert_eq!(upload.file_name, "offer.pdf");
        assert_eq!(upload.mime_type.as_deref(), Some("application/pdf"));
        assert_eq!(upload.file_size, Some(2048));
        assert_eq!(upload.user.user_id, Some(42));
    }

    #[test]
    fn a_button_press_carries_its_data_and_label() {
        let mut keyboard_message = text_message(42, "Hello!");
        keyboard_message["from"] = json!({"id": 1, "is_bot": true, "first_name": "Bot"});
        keyboard_message["reply_markup"] = json!({"inline_keyboard": [
            [{"text": "What do you sell?", "callback_data": "suggest:0"}],
            [{"text": "Shipping?", "callback_data": "suggest:1"}],
        ]});
        let update = json!({"update_id": 4, "callback_query": {
            "id": "q1", "from": user(42), "chat_instance": "c", "data": "suggest:1",
            "message": keyboard_message,
        }});
        let Route::Button(press) = routed(update).unwrap() else {
            panic!()
        };
        assert_eq!(press.query_id, "q1");
        assert_eq!(
            press.chat,
            Chat {
                id: 42,
                private: true
            }
        );
        assert_eq!(press.data, "suggest:1");
        assert_eq!(press.label.as_deref(), Some("Shipping?"));
        assert_eq!(press.user.user_id, Some(42));
    }

    #[test]
    fn blocking_the_bot_is_a_membership_change() {
        let member = |status: &str| {
            json!({"update_id": 5, "my_chat_member": {
                "chat": {"id": 42, "type": "private", "first_name": "Lead"},
                "from": user(42), "date": 1_700_000_000,
                "old_chat_member": {"user": {"id": 1, "is_bot": true, "first_name": "Bot"}, "status": "member"},
                "new_chat_member": {"user": {"id": 1, "is_bot": true, "first_name": "Bot"}, "status": status, "until_date": 0},
            }})
        };
        assert_eq!(
            routed(member("kicked")).unwrap(),
            Route::Membership {
                chat_id: 42,
                blocked: true
            }
        );
        assert_eq!(
            routed(member("member")).unwrap(),
            Route::Membership {
                chat_id: 42,
                blocked: false
            }
        );
    }

    #[test]
    fn edits_and_unknown_kinds_are_acknowledged() {
        assert_eq!(
            routed(json!({"update_id": 6, "edited_message": text_message(42, "hi!")})).unwrap(),
            Route::Ignore("edited message")
        );
        assert_eq!(
            routed(json!({"update_id": 7, "future_kind": {"x": 1}})).unwrap(),
            Route::Ignore("update kind not handled")
        );
    }

    #[test]
    fn a_payload_the_types_cannot_read_is_reported_not_dropped() {
        let err = routed(json!({"update_id": 8, "message": {"text": "no chat"}})).unwrap_err();
        assert!(err.to_string().contains("message update"), "{err}");
        assert!(route_payload(9, "{not json").is_err());
        assert!(route_payload(10, r#"{"message": {}}"#).is_err());
    }

    #[test]
    fn reads_update_headers() {
        let h = parse_update(br#"{"update_id":7,"message":{"message_id":1,"date":0,"chat":{"id":42,"type":"private"},"text":"hi"}}"#).unwrap();
        assert_eq!(
            h,
            UpdateHeader {
                update_id: 7,
                chat_id: Some(42),
                kind: "message"
            }
        );
        let h = parse_update(br#"{"update_id":8,"callback_query":{"id":"x","from":{"id":5},"message":{"chat":{"id":43}}}}"#).unwrap();
        assert_eq!(h.chat_id, Some(43));
        assert!(parse_update(b"{not json").is_none());
        assert!(parse_update(br#"{"message":{}}"#).is_none());
        assert!(parse_update(br#"[1,2]"#).is_none());
    }
}
