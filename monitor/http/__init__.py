"""The daemon's HTTP surface: `app.build_app` puts the routes of one module per resource (targets, incidents,
reports, security, status, notices, console, session, operations) on one aiohttp application, over the
collaborators in `services.HttpServices` (never the daemon itself); `listener` serves it behind the
connection caps. Nothing is re-exported here: import the module you mean."""
