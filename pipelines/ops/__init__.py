"""Operations on the dataset the stages built, none of them Spark: versions and their diff, lineage, audit,
monitor, the HTML report and gc."""
