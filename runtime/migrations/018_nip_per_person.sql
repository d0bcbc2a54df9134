-- One NIP per person, whatever the round (DOMAIN.md: BKN issues the NIP once per appointed
-- person, never twice). A registration number is a pseudonym of the NIK within one round, so the
-- primary key (round_id, applicant_id) let a person appointed in two rounds be given two NIPs.
-- `person` is the NIK's round-independent keyed pseudonym (the sanctions register's subject,
-- never the NIK); a request that names it is given the NIP the person holds, from any round.
-- Rows issued before it have none.

ALTER TABLE nips ADD COLUMN person text;
CREATE UNIQUE INDEX nips_person ON nips (person) WHERE person IS NOT NULL;
