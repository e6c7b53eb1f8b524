"""doctor: every link of the path dbt Cloud uses, judged one by one, with the fix."""
