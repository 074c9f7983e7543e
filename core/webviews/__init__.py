"""Staff web views opened from the chat: signed links (`links`), Telegram Mini App initData
(`initdata`), and the signature pad's service (`pad`)."""
