from slicebox import create_app

app = create_app()
