-- min_profile: phase0
-- The seed's tables (Blue Harvests, seed §1-§5) as the service uses them.
-- Money is numeric(12,2) in euros (Stripe gets integer cents); ids are bigserial
-- (a loader inserting explicit ids must setval() the sequences afterwards).

CREATE TABLE profiles (
    id                 bigserial PRIMARY KEY,
    role               text NOT NULL CHECK (role IN ('consumer', 'farmer', 'driver', 'admin')),
    email              text NOT NULL UNIQUE,
    full_name          text NOT NULL,
    phone              text,
    address            text,
    zip_code           text,
    lon                double precision,
    lat                double precision,
    stripe_customer_id text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE farm_profiles (
    id          bigserial PRIMARY KEY,
    profile_id  bigint NOT NULL REFERENCES profiles (id),
    farm_name   text NOT NULL,
    description text,
    address     text,
    zip_code    text,
    lon         double precision,
    lat         double precision,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
    id              bigserial PRIMARY KEY,
    farm_profile_id bigint NOT NULL REFERENCES farm_profiles (id),
    name            text NOT NULL,
    category        text NOT NULL,
    description     text,
    price           numeric(12, 2) NOT NULL CHECK (price >= 0),
    unit            text NOT NULL DEFAULT 'each',
    stock_quantity  integer NOT NULL,
    is_available    boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- stock_quantity has no CHECK on purpose: `verify` must be able to see an oversold product.

CREATE TABLE market_configs (
    id             bigserial PRIMARY KEY,
    zip_code       text NOT NULL UNIQUE,
    delivery_fee   numeric(12, 2) NOT NULL DEFAULT 0,
    minimum_order  numeric(12, 2) NOT NULL DEFAULT 0,
    delivery_days  text[] NOT NULL DEFAULT '{}',
    cutoff_hour    integer NOT NULL DEFAULT 20,
    is_active      boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE carts (
    id          bigserial PRIMARY KEY,
    consumer_id bigint NOT NULL UNIQUE REFERENCES profiles (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cart_items (
    id         bigserial PRIMARY KEY,
    cart_id    bigint NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    product_id bigint NOT NULL REFERENCES products (id),
    quantity   integer NOT NULL CHECK (quantity > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (cart_id, product_id)
);

CREATE TABLE delivery_batches (
    id                bigserial PRIMARY KEY,
    delivery_date     date NOT NULL,
    zip_code          text,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'claimed', 'in_progress', 'completed')),
    driver_id         bigint REFERENCES profiles (id),
    route_method      text,
    total_distance_m  double precision,
    total_duration_s  double precision,
    created_at        timestamptz NOT NULL DEFAULT now(),
    claimed_at        timestamptz
);

-- status: pending (created, not yet paid), paid, payment_pending (Stripe down,
-- queued for retry: phase3 fallback), payment_failed, completed, delivered, cancelled.
-- order_items / batch_stops reference orders by id without a FOREIGN KEY so that the
-- phase3 migration can partition orders by month (a partitioned table's unique keys
-- must include created_at).
CREATE TABLE orders (
    id                       bigserial PRIMARY KEY,
    consumer_id              bigint NOT NULL REFERENCES profiles (id),
    status                   text NOT NULL DEFAULT 'pending',
    subtotal                 numeric(12, 2) NOT NULL,
    delivery_fee             numeric(12, 2) NOT NULL DEFAULT 0,
    credits_applied          numeric(12, 2) NOT NULL DEFAULT 0,
    total_amount             numeric(12, 2) NOT NULL,
    amount_charged           numeric(12, 2) NOT NULL DEFAULT 0,
    delivery_date            date NOT NULL,
    delivery_batch_id        bigint REFERENCES delivery_batches (id),
    stripe_payment_intent_id text,
    address                  text,
    zip_code                 text,
    lon                      double precision,
    lat                      double precision,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_consumer_idx ON orders (consumer_id);

CREATE TABLE order_items (
    id         bigserial PRIMARY KEY,
    order_id   bigint NOT NULL,
    product_id bigint NOT NULL REFERENCES products (id),
    quantity   integer NOT NULL CHECK (quantity > 0),
    unit_price numeric(12, 2) NOT NULL,
    subtotal   numeric(12, 2) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- amount > 0 credits the consumer, amount < 0 spends; balance_after is the running
-- balance, chained in id order per consumer (verify checks the chain).
-- transaction_type: grant, purchase, refund, adjustment.
CREATE TABLE credits_ledger (
    id               bigserial PRIMARY KEY,
    consumer_id      bigint NOT NULL REFERENCES profiles (id),
    amount           numeric(12, 2) NOT NULL,
    transaction_type text NOT NULL,
    balance_after    numeric(12, 2) NOT NULL,
    order_id         bigint,
    description      text,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- status: pending, arrived, delivered, failed.
CREATE TABLE batch_stops (
    id                bigserial PRIMARY KEY,
    delivery_batch_id bigint NOT NULL REFERENCES delivery_batches (id),
    order_id          bigint NOT NULL,
    sequence_number   integer NOT NULL,
    status            text NOT NULL DEFAULT 'pending',
    address           text,
    lon               double precision,
    lat               double precision,
    estimated_arrival timestamptz,
    delivered_at      timestamptz,
    UNIQUE (delivery_batch_id, sequence_number)
);

-- recipient is a farmer or a driver; status: pending, processing, paid, failed.
CREATE TABLE payouts (
    id               bigserial PRIMARY KEY,
    recipient_id     bigint NOT NULL REFERENCES profiles (id),
    amount           numeric(12, 2) NOT NULL CHECK (amount > 0),
    currency         text NOT NULL DEFAULT 'eur',
    status           text NOT NULL DEFAULT 'pending',
    stripe_payout_id text,
    failure_reason   text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    processed_at     timestamptz
);

-- phase0's rate limiter: one row per request (seed §3.2: 3 DB operations per request).
CREATE TABLE rate_limits (
    id         bigserial PRIMARY KEY,
    key        text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
