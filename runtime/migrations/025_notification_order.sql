-- One applicant's notifications are handed over in the order its journey recorded them
-- (activities/notify.py): a row waits while an older row of the same (round_id, applicant_id) is
-- neither delivered nor given up. Before, a later notice overtook an earlier one that had failed
-- once (an 'appeal accepted' delivered before the TMS it answered, which came a minute later).
--
-- The deliverer asks, for each row it lists and claims, whether such an older row exists. The
-- primary key (round_id, applicant_id, key) would find an applicant's rows, delivered ones among
-- them, and the planner may prefer a hash anti-join over the whole table, which holds millions of
-- rows: this index holds the undelivered rows alone, in the order asked (created_at, then key).

CREATE INDEX IF NOT EXISTS notifications_pending_order
    ON notifications (round_id, applicant_id, created_at, key)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
