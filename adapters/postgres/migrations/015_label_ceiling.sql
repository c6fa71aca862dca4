-- A ceiling on unattended label spending (issue #23).

-- ``held``: the cheapest acceptable rate costs more than the merchant's ceiling, so the worker
-- bought nothing and the label waits for an agent (``label/buy`` or ``label/decline``). The
-- worker's claim (``return_labels_due``) leaves it alone.
ALTER TABLE return_labels DROP CONSTRAINT return_labels_status_check;
ALTER TABLE return_labels ADD CONSTRAINT return_labels_status_check
    CHECK (status IN ('pending', 'held', 'bought', 'failed', 'cancelled', 'void_requested', 'voided'));

-- Why it was held: the rate, the ceiling, the case's items' value; and the agent who had it bought
-- anyway. Kept after the decision, as its record on the label.
ALTER TABLE return_labels ADD COLUMN hold jsonb;
