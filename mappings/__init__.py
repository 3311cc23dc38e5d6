"""How a CRM appointment corresponds to Cal.com bookings: database, models, translations."""
