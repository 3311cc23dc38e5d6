"""Signed webhooks: Cal.com's deliveries in, events to the CRM out."""
