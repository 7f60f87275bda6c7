"""The second factor for admins: a TOTP code after the password (django-otp).

Who must give one and what a session still owes: `policy`; holding a session at
the code page until it is given: `middleware`; checking codes, enrolling and
resetting devices (all audited): `services`; the two pages: `views`.
docs/security.md describes the behaviour.
"""
