-- The period a round on the sanctions calendar belongs to (DOMAIN.md stage 11: an applicant who
-- withdraws after passing is barred from the next 2 rounds, "periode seleksi" as the portal says
-- it): the national round it joined. The instansi rounds of one national recruitment open on
-- their own days within the national window; counted one by one, two of them, opened the day
-- after the sanctioning round's, used up a sanction of 2 rounds, and the next year's rounds were
-- not barred. Rounds of one period now count once, and those of the sanctioning round's own
-- period not at all. NULL: a round of no national round, its own period (as before).
ALTER TABLE sanction_calendar ADD COLUMN period text;
