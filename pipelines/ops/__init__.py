"""Operations on the dataset the stages built: versions and their diff, lineage, audit (its Spark aggregates in
`audit/spark.py`), monitor, the HTML report and gc."""
