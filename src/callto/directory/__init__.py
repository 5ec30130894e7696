"""Directory: users, their devices and SIP credentials, authentication and permissions."""
