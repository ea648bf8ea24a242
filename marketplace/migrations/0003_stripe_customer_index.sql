-- min_profile: phase2
-- Seed §4.4: look up a cached Stripe customer id locally.
CREATE INDEX IF NOT EXISTS idx_profiles_stripe_customer
ON profiles (stripe_customer_id)
WHERE stripe_customer_id IS NOT NULL;
