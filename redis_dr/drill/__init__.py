"""The RTO drill: kill a target, restore its latest backup, and time the recovery."""
