"""English wording."""

LOCALE = "en_GB"  # dates like "Wed 25 Nov"; plural rule

STATUS = {
    "new": "new",
    "assigned": "assigned",
    "picked_up": "picked up",
    "out_for_delivery": "out for delivery",
    "arrived": "at the door",
    "delivered": "delivered",
    "failed": "failed",
    "rescheduled": "rescheduled",
    "returned": "returned",
    "cancelled": "cancelled",
}

TEXTS = {
    # what moving an order *to* a status is called, for "cannot be …" messages
    "verb.new": "unassigned",
    "verb.assigned": "assigned to a driver",
    "verb.picked_up": "marked picked up",
    "verb.out_for_delivery": "sent out for delivery",
    "verb.arrived": "marked arrived",
    "verb.delivered": "marked delivered",
    "verb.failed": "marked failed",
    "verb.rescheduled": "rescheduled",
    "verb.returned": "marked returned",
    "verb.cancelled": "cancelled",
    **{f"status.{key}": value for key, value in STATUS.items()},
    # lifecycle errors
    "error.order_not_found": "There is no order {order}.",
    "error.transition": "Order {order} is {status}, so it cannot be {verb}.",
    "error.final": "Order {order} is {status} already; that is final, so it cannot be {verb}.",
    "error.pickup_first": "Order {order} is a pickup-and-delivery order: mark it picked up first.",
    "error.no_pickup": "Order {order} has no pickup step; send it out for delivery instead.",
    "error.driver_required": "Say which driver should take order {order}.",
    "error.driver_not_found": "There is no driver {driver}.",
    "error.driver_inactive": "Driver {driver} is deactivated and cannot take orders.",
    "error.same_driver": "Order {order} is assigned to that driver already.",
    "error.reason_required": "Say why order {order} failed (for example: nobody home).",
    "error.proof_missing": (
        "Order {order} needs {proof} as proof before it can be marked delivered."
    ),
    "error.too_many_attempts": (
        "Order {order} has had {attempts}, the most allowed; return it or cancel it instead."
    ),
    "order.attempts.one": "1 delivery attempt",
    "order.attempts.other": "{count} delivery attempts",
    "error.window_order": "A time window must end after it starts ({start} – {end}).",
    "error.too_many_actions": "A message can carry at most 3 buttons, not {count}.",
    # orders
    "error.phone_unreadable": "{phone!r} is not a phone number.",
    "error.phone_invalid": (
        "{phone!r} is not a valid phone number (write it with the country code, like +49 151 …)."
    ),
    "error.duplicate_ref": "An order with reference {ref!r} exists already (order {order}).",
    "error.csv_too_big": "The file is larger than {limit_mb} MB; split it into smaller files.",
    "error.csv_not_utf8": "The file is not UTF-8 text; save it as 'CSV UTF-8' and send it again.",
    # invites
    "error.duration_form": "{text!r} is not a duration like 30m, 12h, 7d or 2w.",
    "error.duration_range": "{text!r} is too short or too long: between 1 minute and 90 days.",
    "error.invite_role": "Only drivers, dispatchers and owners can be invited.",
    "cli.invite_created": "Invite {id} for {role}, single use, valid until {until}",
    # routing problems
    "routing.window_order": "A time window ends ({end}) before it starts ({start}).",
    "routing.windows_overlap": "The time windows of {where} overlap; merge them into one.",
    "routing.matrix_shape": "The {name} matrix must be square, not {shape}.",
    "routing.matrix_negative": "The {name} matrix has negative entries.",
    "routing.matrix_mismatch": "The duration and distance matrices differ in size.",
    "routing.duplicate_id": "Two of the {kind}s have the id {id!r}.",
    "routing.unknown_depot": "{where} names depot {depot!r}, which is not in the problem.",
    "routing.unknown_vehicle": (
        "{where} may only go on vehicle {vehicle!r}, which is not in the problem."
    ),
    "routing.unknown_stop": "{where} names stop {stop!r}, which is not in the problem.",
    "routing.vehicle_needs_depot": (
        "{where} has no depot, so it needs a start position and an open end."
    ),
    "routing.dimensions": "{where} must give one amount per capacity dimension ({dims}).",
    "routing.negative": "{where} has a negative {what}.",
    "routing.location": "{where} is at location {index}, but there are only {size} locations.",
    "routing.pair_self": "Stop {stop!r} cannot be its own pickup and delivery.",
    "routing.pair_amount": "Pickup {pickup!r} and delivery {delivery!r} must carry the same load.",
    "routing.pair_required": (
        "Pickup {pickup!r} and delivery {delivery!r} must both be required or both optional."
    ),
    "routing.pair_twice": "Stop {stop!r} is in more than one pickup-and-delivery pair.",
    "routing.bad_point": "{lat}, {lon} is not a point on Earth (latitude ±90, longitude ±180).",
    "routing.bad_traffic": "Traffic profile {text!r} is not like 7-9:1.4, 16-19:1.5.",
    "routing.bad_factors": "A traffic profile needs 24 hourly factors, each above 0.",
    "routing.bad_breaks": "Breaks need work time and a rest length, both above 0.",
    # why a stop was left out of a plan
    "routing.reason.partner": "its pickup-and-delivery partner {stop} could not be planned",
    "routing.reason.optional": "left out: serving it would cost more than it is worth",
    "routing.reason.full": "no room: every route is full (time windows, capacity or shift ends)",
    "routing.reason.not_planned": "not planned this time: it will be tried again",
    "routing.reason.no_vehicles": "no driver is on shift",
    "routing.reason.locked_away": "it is locked to a driver who is not on shift",
    "routing.reason.skills": "no driver on shift has {skills}",
    "routing.reason.no_compatible": "no driver on shift may take it (zone, vehicle or lock)",
    "routing.reason.too_big": "it is bigger than every vehicle that could take it",
    "routing.reason.unreachable": "no driver can reach it within its time window and shift",
    # dispatch explanations
    "error.window_not_waiting": (
        "Order {order} already has a driver or is done: its window can no longer be changed here."
    ),
    "dispatch.no_driver": "no driver on shift can take it",
    "dispatch.not_on_shift": "Driver {driver} is not on shift or has not shared a location.",
    "dispatch.not_waiting": ("Order {order} is not waiting for a driver, or has no location yet."),
    "dispatch.nearest": "nearest feasible driver, +{minutes} min to the route",
    "dispatch.nearest_cannot": "{nearest} is nearer but {why}; +{minutes} min to this route",
    "dispatch.cheaper_than_nearest": (
        "+{minutes} min to this route, less than it would add for {nearest}, who is nearer"
    ),
    "dispatch.no_location": "its address has no map point yet; send a location pin or fix it",
    "dispatch.changed": "it changed while the plan was made (by hand, or started): left as it is",
    "dispatch.off_shift": "{driver} went off shift while the plan was made",
    "dispatch.taken": (
        "Order {ref} was just assigned to {driver} by someone else, so your choice was not saved. "
        "Assign it again to change that."
    ),
    "dispatch.not_allowed": "may not take it (zone, vehicle or lock)",
    "dispatch.lacks": "lacks {skills}",
    "dispatch.full_stops": "already has the most stops allowed",
    "dispatch.full_load": "has no room left in the vehicle",
    "dispatch.shift_over": "would finish after the shift ends",
    "dispatch.no_time": "cannot get there within its time window",
    "proof.photo": "a photo",
    "proof.signature": "a signature",
    "proof.pin": "the customer's PIN",
    "proof.photo+signature": "a photo and a signature",
    # geocoding
    "geocoding.empty": "Send an address or drop a location pin; this message has no address.",
    "geocoding.too_long": (
        "That address is too long (at most {limit} characters). "
        "Send a shorter one or drop a location pin."
    ),
    "geocoding.unavailable": (
        "The address search is not answering right now; send a location pin instead."
    ),
    "geocoding.no_match": (
        "No place found for {text!r}. Check the address, or send a location pin."
    ),
    # api
    "api.key_name": "An API key needs a name of 1 to 100 characters.",
    "api.key_not_found": "There is no API key with prefix {prefix!r}.",
    "api.unauthorized": (
        "A valid API key is required: send it as 'Authorization: Bearer <key>' or 'X-API-Key'."
    ),
    "api.idempotency_conflict": (
        "Idempotency-Key {key!r} was used before with a different request (order {order}); "
        "use a new key for a new order."
    ),
    "api.bad_cursor": "cursor is not one this API gave out; start again without it.",
    "api.unreadable_json": "The body is not well-formed JSON.",
    "api.no_proof": "Order {order} has no proof of delivery.",
    "api.too_large": "The request body is larger than the {limit} this address accepts.",
    "api.unavailable": "The service cannot reach its database just now; try again shortly.",
    "api.server_error": "Something went wrong on our side; it is logged. Try again later.",
    # merchant webhooks
    "webhook.url_length": "The webhook URL must be 1 to {limit} characters.",
    "webhook.url_form": "The webhook URL must be an http:// or https:// address with a host.",
    "webhook.url_https": (
        "The webhook URL must use https:// (plain http is allowed only for localhost, "
        "unless WEBHOOKS_REQUIRE_HTTPS=false)."
    ),
    "webhook.url_private": (
        "The webhook URL must lead to the public internet, not to {host!r} (a local or "
        "private address), unless WEBHOOKS_ALLOW_PRIVATE=true."
    ),
    "webhook.delivery_not_found": "This API key has no webhook delivery {delivery}.",
    "webhook.delivery_busy": "Webhook delivery {delivery} is being sent right now; try again.",
    "webhook.off": "This API key has no webhook URL; set one first.",
    # signed links
    "link.bad": "This link is not valid: it was changed or cut short.",
    "link.expired": "This link has expired; ask for a new one.",
    "link.no_photo": "There is no photo behind this link (any more).",
    "link.store_down": "The photo is kept but cannot be read just now. Try again in a minute.",
    "link.revoked": "This link was withdrawn; ask for a new one.",
    "webapp.bad": "This page could not prove it came from the bot; open it again from the chat.",
    "webapp.expired": "This page was opened too long ago; open it again from the chat.",
    "webapp.replayed": "This page was already used once; open it again from the chat.",
    "sign.bad_drawing": "The signature could not be read; clear the pad and sign again.",
    "sign.empty": "Sign in the box first.",
    "sign.too_big": "That signature is too long; clear the pad and sign again.",
    "sign.closed": "Order {ref} is closed; nothing more can be signed for it.",
    "pad.title": "Signature for order {ref}",
    "pad.hint": "Sign with your finger in the box, then type your name.",
    "pad.name": "Your name",
    "pad.clear": "Clear",
    "pad.submit": "Sign",
    "pad.done": "Signed. Thank you!",
    "pad.offline": "Not sent yet (no connection?); tap Sign again.",
    # the dispatcher's live board
    "board.title": "Live board",
    "board.drivers": "Drivers",
    "board.waiting": "Waiting",
    "board.at_risk": "At risk",
    "board.none": "None.",
    "board.assign": "Assign",
    "board.reassign": "Reassign",
    "board.cancel": "Cancel order",
    "board.cancel_sure": "Yes, cancel",
    "board.pick_driver": "Pick a driver first.",
    "board.last_seen": "seen",
    "board.live": "live",
    "board.off_shift": "off shift",
    "board.no_map": "No map tiles: positions on a plain background.",
    "board.offline": "Connection lost; reconnecting…",
    "board.stops": "stops",
    "board.late_by": "late by {minutes} min",
    "board.not_staff": "This board is for dispatchers and owners; ask one for access.",
    "board.bad_order": "There is no such order; reload the board.",
    "board.bad_request": "The board sent something unreadable; reload it.",
    "board.assigned": "Order {ref} → {driver}.",
    "board.cancelled": "Order {ref} is cancelled.",
    # the driver's page (/driver/<token>)
    "driverpage.title": "Your stops",
    "driverpage.empty": "You have no stops right now.",
    "driverpage.navigate": "Google Maps",
    "driverpage.map": "Map app",
    "driverpage.photo": "📷 Photo",
    "driverpage.photo_saved": "Photo saved for order {ref}.",
    "driverpage.signature": "✍️ Signature",
    "driverpage.signed": "Signed",
    "driverpage.pin": "Customer's PIN",
    "driverpage.reasons": "Why could it not be delivered?",
    "driverpage.other": "Other (type what happened)",
    "driverpage.send": "Send",
    "driverpage.cancel": "Back",
    "driverpage.sharing": "Sharing your position while this page is open.",
    "driverpage.not_sharing": "Your position is not shared: allow location for this page.",
    "driverpage.offline": "Not sent (no connection?); try again.",
    "driverpage.busy": "Sending…",
    "driverpage.eta": "ETA",
    "driverpage.window": "Window",
    "driverpage.for": "For",
    "driverpage.note": "Note",
    "driverpage.proof_photo": "Needs a photo",
    "driverpage.proof_signature": "Needs a signature",
    "driverpage.proof_pin": "Needs the customer's PIN",
    "driverpage.proof_both": "Needs a photo and a signature",
    "driverpage.already": "Order {ref} is {status} already; nothing changed.",
    "driverpage.photo_needed": (
        "Order {ref} needs a photo of the delivered parcel first: tap Photo and take one."
    ),
    "driverpage.signature_needed": (
        "Order {ref} needs the recipient's signature first: tap Signature and hand them the phone."
    ),
    "driverpage.no_signature": "Order {ref} needs no signature.",
    "driverpage.bad_position": "That position could not be read; it was not kept.",
    "driverpage.bad_request": "That request could not be read; reload the page and try again.",
    # the sandbox page (/sandbox)
    "sandbox.off": (
        "The sandbox is off: start the service with SANDBOX=true (or run lastmile demo)."
    ),
    "sandbox.not_loopback": (
        "The sandbox answers only on this machine (127.0.0.1) unless SANDBOX_TOKEN is set "
        "and given as ?token= or the X-Sandbox-Token header."
    ),
    "sandbox.unknown_participant": "Nobody in the sandbox is called {key!r}; reload the page.",
    "sandbox.empty_text": "Type a message first.",
    "sandbox.text_too_long": "A message has at most {limit} characters.",
    "sandbox.bad_button": "That is not a button of this chat (at most {limit} bytes of data).",
    "sandbox.bad_location": (
        "A pin needs a latitude from -90 to 90 and a longitude from -180 to 180, as numbers "
        "(like 41.3874 and 2.1686)."
    ),
    "sandbox.no_file": "That file is no longer kept here (the sandbox keeps the latest ones).",
}
